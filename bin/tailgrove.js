#!/usr/bin/env node
import '../dist/msgpack-pure.js';
import { cli } from '../dist/cli.js';

await cli(process.argv.slice(2));
