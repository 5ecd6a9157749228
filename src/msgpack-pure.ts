// msgpackr loads an optional native addon (msgpackr-extract) when it can. tailgrove uses
// msgpack only off the hot path (control frames, small records), and the native-free engine
// must load no `.node` file at all: so the addon is never used. Imported first by the entry
// points, before anything imports msgpackr; threads inherit the environment.
process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED = 'true';
