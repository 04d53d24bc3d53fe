#!/usr/bin/env node
// Starts one local AWS emulator (kinesalite or dynalite) for the Go tests and the dev stack;
// package shared/sandbox/emulators drives it.
//
//   node .devtools/emulator.js kinesalite|dynalite
//
// - storage is in memory and streams/tables become ACTIVE at once (create/delete/update = 0 ms);
// - it listens on 127.0.0.1 only, on a free port, and prints exactly one line
//   "listening 127.0.0.1:PORT" on stdout once connections are accepted;
// - it exits when stdin reaches end-of-file or on SIGTERM/SIGINT. The Go parent keeps the write
//   end of a pipe as our stdin; if the parent dies, even by SIGKILL, the kernel closes it and we
//   exit, so no emulator outlives the test or dev stack that started it. (Run by hand from a
//   terminal it stays up until Ctrl-D or Ctrl-C.)
'use strict'

const path = require('path')

const settings = {
  // shardLimit counts the open shards of all streams; tests create many small streams.
  kinesalite: { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100000 },
  dynalite: { createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 },
}

const kind = process.argv[2]
if (!Object.prototype.hasOwnProperty.call(settings, kind)) {
  console.error('usage: node emulator.js ' + Object.keys(settings).join('|'))
  process.exit(2)
}

const quit = (code) => () => process.exit(code)

// kinesalite 3.3.3 rethrows the 'aborted' error of a request whose client went away (a Go
// request cancelled by its context does that), which would kill the emulator for everyone.
// A client hanging up is not the server's problem: ignore exactly that, fail on anything else.
process.on('uncaughtException', (err) => {
  if (err && err.code === 'ECONNRESET' && err.message === 'aborted') return
  console.error(kind + ': ' + (err && err.stack ? err.stack : err))
  process.exit(1)
})
process.stdin.on('end', quit(0))
process.stdin.on('close', quit(0))
process.stdin.on('error', quit(0))
process.stdin.resume()
process.on('SIGTERM', quit(0))
process.on('SIGINT', quit(0))
process.on('SIGHUP', quit(0))

// No "path" option: both emulators keep their data in memory.
const create = require(path.join(__dirname, 'node_modules', kind))
const server = create(Object.assign({}, settings[kind]))
server.on('error', (err) => {
  console.error(kind + ': ' + (err.stack || err))
  process.exit(1)
})
server.listen(0, '127.0.0.1', () => {
  const addr = server.address()
  process.stdout.write('listening ' + addr.address + ':' + addr.port + '\n')
})
