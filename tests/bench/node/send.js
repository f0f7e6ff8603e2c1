'use strict';
// The Node SDK side of tests/bench/replay-bench.py: the official Amplitude Node
// SDK (@amplitude/analytics-node, version pinned in package.json) sends the
// benchmark's events to ferry-sink, as an application would with its serverUrl
// pointed at a local receiver. Not a test on its own; replay-bench.py runs it
// from a copy under the build directory, next to the node_modules that
// `npm ci` installed there.
//
//   node send.js --events FILE --server-url URL [--api-key KEY] [--batch N]
//                [--interval MS] [--window N] [--instances K]
//
// --events    JSON Lines, one Amplitude event per line (event_type, device_id,
//             insert_id, time, ...); each is passed to track() as it is, so the
//             SDK keeps its insert_id and time and adds event_id and library
// --batch     flushQueueSize: events per request (default 2000, Amplitude's
//             and ferry-sink's per-request maximum; the SDK has no cap of its
//             own and halves it by itself after a 413)
// --interval  flushIntervalMillis (default 100): the SDK sends only from this
//             timer, never because its queue is full
// --window    at most this many events tracked but not yet answered; the file
//             is read as they are answered (default 4000; 0: no limit, read
//             and track everything)
// --instances clients made with createInstance(), events dealt out by device
//             (default 1: one client, as an application has; more run side by
//             side in this one process)
//
// Prints one JSON line on stdout: {"tracked":N,"codes":{"200":N,...},
// "seconds":S}. Exit 0 when every event got a 200.
const fs = require('fs');
const readline = require('readline');
const amplitude = require('@amplitude/analytics-node');

function parseArgs(argv) {
  const opts = { apiKey: 'replay-bench-key-0123456789', batch: 2000, interval: 100, window: 4000, instances: 1 };
  const names = {
    '--events': 'events', '--server-url': 'serverUrl', '--api-key': 'apiKey',
    '--batch': 'batch', '--interval': 'interval', '--window': 'window', '--instances': 'instances',
  };
  for (let i = 0; i < argv.length; i++) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) {
      process.stderr.write(`send.js: unknown or incomplete option ${argv[i]}\n`);
      process.exit(64);
    }
    opts[key] = argv[++i];
  }
  for (const k of ['batch', 'interval', 'window', 'instances']) opts[k] = Number(opts[k]);
  if (!opts.events || !opts.serverUrl) {
    process.stderr.write('usage: node send.js --events FILE --server-url URL [--api-key KEY] ' +
                         '[--batch N] [--interval MS] [--window N] [--instances K]\n');
    process.exit(64);
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = process.hrtime.bigint();
  const clients = [];
  for (let i = 0; i < Math.max(1, opts.instances); i++) {
    const client = amplitude.createInstance();
    await client.init(opts.apiKey, {
      serverUrl: opts.serverUrl,
      flushQueueSize: opts.batch,
      flushIntervalMillis: opts.interval,
      logLevel: amplitude.Types.LogLevel.Error,
    }).promise;
    clients.push(client);
  }
  const byDevice = new Map();
  const clientFor = (event) => {
    let c = byDevice.get(event.device_id);
    if (c === undefined) {
      c = clients[byDevice.size % clients.length];
      byDevice.set(event.device_id, c);
    }
    return c;
  };

  const codes = {};
  let tracked = 0;
  const pending = [];
  const done = (result) => {
    const c = String(result && result.code);
    codes[c] = (codes[c] || 0) + 1;
  };
  const lines = readline.createInterface({ input: fs.createReadStream(opts.events), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line) continue;
    const event = JSON.parse(line);
    pending.push(clientFor(event).track(event).promise.then(done));
    tracked++;
    if (opts.window > 0 && pending.length >= opts.window) {
      // Wait for the oldest half of the window: the SDK answers in order.
      await Promise.all(pending.splice(0, pending.length >> 1));
    }
  }
  await Promise.all(pending);
  // Nothing should be left; this is the SDK's own end-of-run call.
  await Promise.all(clients.map((c) => c.flush().promise));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify({ tracked, codes, seconds }) + '\n');
  return codes['200'] === tracked ? 0 : 1;
}

main().then((rc) => process.exit(rc), (err) => {
  process.stderr.write(`send.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(70);
});
