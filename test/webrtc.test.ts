// The WebRTC example (examples/webrtc) end to end: a real tailgrove server, the example's
// serve.mjs, and headless Chromium tabs in one room. They find each other through presence,
// the leader's offers, the answers and ICE candidates travel as tailgrove signals, and chat
// messages cross the RTCDataChannels. When the leader's tab closes, the next tab leads and
// connects to the others.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import t from 'tap';
import { removeDataDir, repositoryRoot, startServer, type ServerProcess } from './helpers/server.js';

const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // On a machine whose only interface is lo, 127.0.0.1 is then a host candidate (ICE leaves
  // loopback out by default). It takes effect only for pages allowed to enumerate interfaces:
  // see the camera and microphone grant in openTab.
  '--allow-loopback-in-peer-connection',
];
const WAIT_MS = 15_000;

/** What a tab shows: its role, the presence list and the messages (read from the DOM). */
interface TabView {
  role: string;
  error: string;
  presence: Array<{ device: string; leader: boolean; channel: string | null }>;
  messages: Array<{ from: string; via: string; text: string }>;
}

// A string expression: the test's tsconfig has no DOM types.
const VIEW_EXPRESSION = `({
  role: document.body.dataset.role ?? '',
  error: document.getElementById('error').textContent,
  presence: Array.from(document.querySelectorAll('#presence li'), (item) => ({ device: item.dataset.device, leader: 'leader' in item.dataset, channel: item.dataset.channel ?? null })),
  messages: Array.from(document.querySelectorAll('#messages li'), (item) => ({ from: item.dataset.from, via: item.dataset.via, text: item.textContent })),
})`;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function viewOf(page: Page): Promise<TabView> {
  return page.evaluate<TabView>(VIEW_EXPRESSION);
}

/** Poll the tab until `condition` holds on what it shows; returns that view. */
async function until(page: Page, what: string, condition: (view: TabView) => boolean): Promise<TabView> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const view = await viewOf(page);
    if (condition(view)) return view;
    if (Date.now() > deadline) throw new Error(`timed out waiting for the tab to show ${what}; it shows ${JSON.stringify(view)}`);
    await sleep(100);
  }
}

const devicesOf = (view: TabView): string[] => view.presence.map((entry) => entry.device).sort();
const leadersOf = (view: TabView): string[] => view.presence.filter((entry) => entry.leader).map((entry) => entry.device);
const channelTo = (view: TabView, device: string): string | null | undefined => view.presence.find((entry) => entry.device === device)?.channel;

/** Start examples/webrtc/serve.mjs against `server`; resolves with the page's URL once it listens. */
async function startExample(server: ServerProcess): Promise<{ child: ChildProcess; base: string; output: () => string }> {
  // The secret must come from the server's data directory, as a developer's would.
  const env = { ...process.env };
  delete env.TAILGROVE_SECRET;
  const args = ['examples/webrtc/serve.mjs', '--port', '0', '--tailgrove', server.url, '--data', server.dataDir];
  const child = spawn(process.execPath, args, { cwd: repositoryRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let output = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const base = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = /webrtc example on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`serve.mjs exited with ${code} before listening:\n${output}`)));
  });
  return { child, base, output: () => output };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Tabs on the example's page, each in its own browser context, recording what went wrong in them. */
class Tabs {
  readonly problems: string[] = [];
  readonly #browser: Browser;
  readonly #base: string;

  constructor(browser: Browser, base: string) {
    this.#browser = browser;
    this.#base = base;
  }

  async open(room: string, device: string): Promise<Page> {
    // Pages with camera and microphone permission may enumerate network interfaces, so
    // their host candidates carry real addresses (127.0.0.1 among them, with the flag
    // above). Without it Chromium offers only the default route's address behind an mDNS
    // name, and a machine without a default route or multicast offers nothing.
    const context = await this.#browser.newContext();
    await context.grantPermissions(['camera', 'microphone']);
    const page = await context.newPage();
    page.on('pageerror', (error) => this.problems.push(`${device}: page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') this.problems.push(`${device}: console: ${message.text()}`);
    });
    await page.goto(`${this.#base}?room=${room}&device=${device}`);
    // Wait for its lease, so tabs attach (and lead) in the order they were opened.
    await until(page, 'its lease', (view) => view.role !== '');
    return page;
  }
}

if (!existsSync(CHROMIUM_PATH)) {
  t.fail(`${CHROMIUM_PATH} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run installs it) to run the WebRTC example test`);
} else {
  let tabs: Tabs;
  t.before(async () => {
    const server = await startServer();
    t.teardown(async () => {
      await server.stop();
      removeDataDir(server.dataDir);
    });
    const example = await startExample(server);
    t.teardown(() => stopChild(example.child));
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    t.teardown(() => browser.close());
    tabs = new Tabs(browser, example.base);
  });

  t.test('two tabs find each other, connect over WebRTC through signals, chat peer to peer, and the survivor leads', async (t) => {
    const alice = await tabs.open('room-two', 'alice');
    const bob = await tabs.open('room-two', 'bob');
    t.teardown(() => Promise.all([alice.context().close(), bob.context().close()]));

    const bothPresent = (view: TabView): boolean => devicesOf(view).join() === 'alice,bob';
    const aliceView = await until(alice, 'alice and bob present', bothPresent);
    const bobView = await until(bob, 'alice and bob present', bothPresent);
    t.same(devicesOf(aliceView), ['alice', 'bob'], "alice's tab shows both devices");
    t.same(devicesOf(bobView), ['alice', 'bob'], "bob's tab shows both devices");
    t.same(leadersOf(aliceView), ['alice'], "alice's tab marks one leader: alice, the first attached");
    t.same(leadersOf(bobView), ['alice'], "bob's tab marks the same leader");
    t.same([aliceView.role, bobView.role], ['leader', 'follower'], 'exactly one tab says it leads');

    await until(alice, 'an open data channel to bob', (view) => channelTo(view, 'bob') === 'open');
    await until(bob, 'an open data channel to alice', (view) => channelTo(view, 'alice') === 'open');
    t.pass('the data channel opened on both tabs');

    // A message is shown with via=datachannel only by the channel's `message` listener.
    await alice.fill('#text', 'hello from alice');
    await alice.press('#text', 'Enter');
    const atBob = await until(bob, "alice's message", (view) => view.messages.some((message) => message.from === 'alice'));
    t.same(atBob.messages, [{ from: 'alice', via: 'datachannel', text: 'alice: hello from alice' }], "alice's message reached bob over the data channel");
    t.same((await viewOf(alice)).messages, [{ from: 'me', via: 'sent', text: 'me: hello from alice' }], 'alice sent it on an open channel');

    await bob.fill('#text', 'hi alice, bob here');
    await bob.click('#send button');
    const atAlice = await until(alice, "bob's message", (view) => view.messages.some((message) => message.from === 'bob'));
    t.same(
      atAlice.messages.filter((message) => message.from === 'bob'),
      [{ from: 'bob', via: 'datachannel', text: 'bob: hi alice, bob here' }],
      "bob's message reached alice over the data channel",
    );

    // The leader leaves: bob is alone and leads, and his connection to alice is closed.
    await alice.context().close();
    const alone = await until(bob, 'bob alone, leading', (view) => devicesOf(view).join() === 'bob' && view.role === 'leader');
    t.same(alone.presence, [{ device: 'bob', leader: true, channel: null }], 'presence shows bob alone, as the leader, with no peer connection');
    t.equal(alone.error, '', 'no error shown on the surviving tab');
    t.same(tabs.problems, [], 'no page errors or console errors in either tab');
  });

  t.test('with three tabs, the next leader connects to the tab it had no connection with', async (t) => {
    const [alice, bob, carol] = [await tabs.open('room-three', 'alice'), await tabs.open('room-three', 'bob'), await tabs.open('room-three', 'carol')];
    t.teardown(() => Promise.all([alice, bob, carol].map((page) => page.context().close())));
    await until(alice, 'open channels to bob and carol', (view) => channelTo(view, 'bob') === 'open' && channelTo(view, 'carol') === 'open');
    const before = await viewOf(bob);
    t.equal(channelTo(before, 'carol'), null, 'followers have no connection with each other: only the leader connects');

    await alice.context().close();
    const bobLeads = await until(bob, 'bob leading with an open channel to carol', (view) => view.role === 'leader' && channelTo(view, 'carol') === 'open');
    t.same(devicesOf(bobLeads), ['bob', 'carol'], 'alice left the presence');
    await until(carol, 'an open channel to bob, the new leader', (view) => leadersOf(view).join() === 'bob' && channelTo(view, 'bob') === 'open');

    await bob.fill('#text', 'bob leads now');
    await bob.press('#text', 'Enter');
    const atCarol = await until(carol, "bob's message", (view) => view.messages.some((message) => message.from === 'bob'));
    t.same(atCarol.messages, [{ from: 'bob', via: 'datachannel', text: 'bob: bob leads now' }], "the new leader's message reached carol over the new data channel");
    t.same(tabs.problems, [], 'no page errors or console errors in any tab');
  });
}
