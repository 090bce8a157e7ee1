#!/usr/bin/env node
// prebuild: builds the addon from binding.gyp for each Linux architecture this machine can compile
// for, into prebuildify's layout (prebuilds/linux-<arch>/graceful-restart.glibc.node), which
// node-gyp-build looks up at install and at load time. `npm pack` runs it (prepack), so the tarball
// carries the binaries and git does not; `--clean` (postpack) removes them again, so that `npm ci`
// in a checkout keeps compiling from source. The host's own build is left in build/Release.
//
// The host architecture is always built; on x64, arm64 too when Debian's cross compiler
// (g++-aarch64-linux-gnu) is installed. Set GRACEFUL_PREBUILD_ARCHS=x64,arm64 to require a list.
import { execFileSync } from 'node:child_process';
import { accessSync, closeSync, constants, copyFileSync, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const prebuilds = path.join(root, 'prebuilds');

/** ELF e_machine of each architecture: a cross build that came out for the host is caught. */
const machines = { x64: 62, arm64: 183 };
/** Cross toolchains by target, as Debian names them (prefix of gcc, g++, ar, strip). */
const cross = { arm64: 'aarch64-linux-gnu-' };

function onPath(name) {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function nodeGyp() {
  try {
    return createRequire(path.join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
    throw new Error('prebuild: node-gyp is not installed: run `npm ci` first');
  }
}

function elfMachine(file) {
  const fd = openSync(file, 'r');
  const header = Buffer.alloc(20);
  readSync(fd, header, 0, 20, 0);
  closeSync(fd);
  if (header.readUInt32BE(0) !== 0x7f454c46) throw new Error(`prebuild: ${file} is not an ELF file`);
  return header.readUInt16LE(18);
}

function build(arch) {
  const host = arch === os.arch();
  const prefix = host ? '' : cross[arch];
  const env = { ...process.env };
  const args = [nodeGyp(), 'rebuild', '--release'];
  if (!host) {
    Object.assign(env, { CC: `${prefix}gcc`, CXX: `${prefix}g++`, LINK: `${prefix}g++`, AR: `${prefix}ar` });
    args.push(`--arch=${arch}`);
  }
  console.error(`prebuild: linux-${arch}`);
  execFileSync(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const dir = path.join(prebuilds, `linux-${arch}`);
  const out = path.join(dir, 'graceful-restart.glibc.node');
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(root, 'build/Release/graceful_fdpass.node'), out);
  execFileSync(`${prefix}strip`, ['--strip-unneeded', out]);
  if (elfMachine(out) !== machines[arch]) throw new Error(`prebuild: ${out} was not built for ${arch}`);
  console.error(`prebuild: wrote ${path.relative(root, out)}`);
}

function targets() {
  const host = os.arch();
  if (process.platform !== 'linux' || !(host in machines)) {
    throw new Error(`prebuild: prebuilds are made on Linux x64 or arm64, not ${process.platform}-${host}`);
  }
  const wanted = process.env.GRACEFUL_PREBUILD_ARCHS;
  if (wanted) {
    const list = wanted.split(',').map((a) => a.trim()).filter(Boolean);
    for (const arch of list) {
      if (!(arch in machines)) throw new Error(`prebuild: unknown architecture ${arch} (x64 or arm64)`);
      if (arch !== host && !onPath(`${cross[arch]}g++`)) {
        throw new Error(`prebuild: ${cross[arch]}g++ is not installed (Debian: apt-get install g++-${cross[arch].slice(0, -1)})`);
      }
    }
    // The host last, so that build/Release ends up holding its build.
    return [...list.filter((a) => a !== host), ...(list.includes(host) ? [host] : [])];
  }
  const extra = Object.keys(cross).filter((arch) => arch !== host && onPath(`${cross[arch]}g++`));
  for (const arch of Object.keys(cross)) {
    if (arch !== host && !extra.includes(arch)) {
      console.error(`prebuild: no linux-${arch} prebuild: ${cross[arch]}g++ is not installed`);
    }
  }
  return [...extra, host];
}

if (process.argv.includes('--clean')) {
  rmSync(prebuilds, { recursive: true, force: true });
} else {
  rmSync(prebuilds, { recursive: true, force: true });
  const list = targets();
  for (const arch of list) build(arch);
  // A cross build leaves its objects in build/: the host build came last and replaced them.
  if (list.at(-1) !== os.arch()) rmSync(path.join(root, 'build'), { recursive: true, force: true });
}
