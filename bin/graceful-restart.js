#!/usr/bin/env node
// The graceful-restart command line; see `graceful-restart --help`.
import { main } from '../dist/src/cli.js';

process.exitCode = await main(process.argv.slice(2));
