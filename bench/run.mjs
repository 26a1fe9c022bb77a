#!/usr/bin/env node
/**
 * azbk benchmark: backs up one tree with azbk, restic and borg (those installed) into fresh
 * repositories on the same disk, with compression on for all, and prints one table with each
 * step's time (or size, or memory) and its ratio to restic. See bench/README.md.
 *
 *   node bench/run.mjs PATH [--tools azbk,azbk-https,azbk-journal,restic,borg] [--work DIR] [--json FILE] [--keep]
 *                           [--change-every N] [--no-floor] [--no-check] [--verify all|azbk|none] [--azbk DIR]
 *                           [--wait-idle SECONDS] [--repeat N]
 *
 * Plain Node ESM, no dependencies: it runs the built CLI (node bin/azbk), so build first
 * (`npm run bench -- PATH` does).
 *
 * WARNING: the third run needs a changed tree, so PATH IS MODIFIED during the run: a few bytes are
 * appended to every Nth regular file (sorted path order). The files are truncated back and their
 * times reset when the run ends (also on failure or Ctrl-C), but do not point this at data you
 * care about.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// the azbk checkout that is measured: this one, or --azbk DIR (a built clone of a given commit)
let ROOT = path.resolve(HERE, '..');
let AZBK = path.join(ROOT, 'bin', 'azbk');
const ALL_TOOLS = ['azbk', 'azbk-https', 'azbk-journal', 'restic', 'borg'];
// the default set: azbk through its HTTPS vault service and azbk with its change journal
// (`azbk watch` running) are opt-in (--tools azbk,azbk-https,azbk-journal,restic,borg)
const DEFAULT_TOOLS = ['azbk', 'restic', 'borg'];
const CHANGE_SUFFIX = Buffer.from('\n/* azbk-bench: changed */\n');
const GNU_TIME = '/usr/bin/time';
/** a step during which other processes used this many cores on average is marked in the table */
const BUSY_MARK = 0.25;
/** how long `azbk watch` may take to set up its watches (a big tree takes a while) */
const WATCH_READY_TIMEOUT_S = 900;
/** how long the change journal may take to record the changed files */
const JOURNAL_CATCH_UP_TIMEOUT_S = 120;

// ---------------------------------------------------------------------------------------------
// arguments

function usage(msg) {
  if (msg) process.stderr.write(`bench: ${msg}\n`);
  process.stderr.write(
    'usage: node bench/run.mjs PATH [--tools azbk,azbk-https,azbk-journal,restic,borg] [--work DIR] [--restore-to DIR]\n' +
      '                          [--json FILE] [--keep]\n' +
      '                          [--change-every N] [--no-floor] [--no-check] [--verify all|azbk|none] [--azbk DIR]\n' +
      '                          [--wait-idle SECONDS] [--repeat N]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { waitIdle: 0, repeat: 1, azbk: null, tools: DEFAULT_TOOLS, work: null, restoreTo: null, json: null, keep: false, changeEvery: 100, floor: true, check: true, verify: 'all', source: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--tools') o.tools = val().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--work') o.work = path.resolve(val());
    else if (a === '--restore-to') o.restoreTo = path.resolve(val());
    else if (a === '--json') o.json = path.resolve(val());
    else if (a === '--keep') o.keep = true;
    else if (a === '--wait-idle') o.waitIdle = Number(val());
    else if (a === '--repeat') o.repeat = Number(val());
    else if (a === '--azbk') o.azbk = path.resolve(val());
    else if (a === '--no-floor') o.floor = false;
    else if (a === '--no-check') o.check = false;
    else if (a === '--change-every') o.changeEvery = Number(val());
    else if (a === '--verify') o.verify = val();
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (o.source === null) o.source = path.resolve(a);
    else usage(`only one PATH, got ${o.source} and ${a}`);
  }
  if (o.source === null) usage('PATH is required');
  for (const t of o.tools) if (!ALL_TOOLS.includes(t)) usage(`unknown tool ${t} (known: ${ALL_TOOLS.join(', ')})`);
  if (!Number.isInteger(o.changeEvery) || o.changeEvery < 1) usage('--change-every must be a positive integer');
  if (!['all', 'azbk', 'none'].includes(o.verify)) usage('--verify must be all, azbk or none');
  if (!Number.isInteger(o.repeat) || o.repeat < 1 || o.repeat > 9) usage('--repeat must be an integer from 1 to 9');
  return o;
}

// ---------------------------------------------------------------------------------------------
// small helpers

const log = (s) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '')?.trim() ?? null;
}

function hasGnuTime() {
  try {
    fs.accessSync(GNU_TIME, fs.constants.X_OK);
  } catch {
    return false;
  }
  return /GNU/.test(firstLine(GNU_TIME, ['--version']) ?? '');
}

function fmtBytes(n) {
  if (n === null || n === undefined) return 'n/a';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2)} ${units[i]}`;
}

function fmtSecs(s) {
  if (s === null || s === undefined) return 'n/a';
  return s >= 100 ? `${s.toFixed(0)} s` : s >= 10 ? `${s.toFixed(1)} s` : `${s.toFixed(2)} s`;
}

/**
 * Busy CPU seconds of the whole machine so far (all cores: user, nice, system, irq, softirq,
 * steal), from /proc/stat; null where there is none. The difference over a step, minus the
 * step's own user + system time, is what other processes used meanwhile.
 */
function machineBusySeconds() {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = v;
    return (user + nice + system + irq + softirq + (steal ?? 0)) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/**
 * Waits until other processes have used under 0.15 cores for 3 seconds in a row, or `maxSec`
 * have passed (then goes on and says so).
 */
async function waitIdle(maxSec) {
  const t0 = Date.now();
  let quiet = 0;
  let prev = machineBusySeconds();
  if (prev === null) return;
  while (quiet < 3) {
    if (Date.now() - t0 > maxSec * 1000) {
      log(`  machine still busy after waiting ${maxSec} s; going on`);
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
    const now = machineBusySeconds();
    quiet = now - prev < 0.15 ? quiet + 1 : 0;
    prev = now;
  }
  const waited = (Date.now() - t0) / 1000;
  if (waited > 4) log(`  waited ${waited.toFixed(0)} s for the machine to be idle`);
}

/** Regular files under `root` (relative paths, sorted by code unit), plus counts. */
async function scanTree(root) {
  const files = [];
  let dirs = 0;
  let symlinks = 0;
  let bytes = 0;
  async function walk(rel) {
    const entries = await fsp.readdir(path.join(root, rel), { withFileTypes: true });
    for (const e of entries) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        dirs++;
        await walk(r);
      } else if (e.isSymbolicLink()) symlinks++;
      else if (e.isFile()) {
        const st = await fsp.stat(path.join(root, r));
        bytes += st.size;
        files.push(r);
      }
    }
  }
  await walk('');
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { files, dirs, symlinks, bytes };
}

/** Disk usage (allocated bytes) and apparent size of a folder, via du. */
function du(dir) {
  const alloc = spawnSync('du', ['-s', '-B1', dir], { encoding: 'utf8' });
  const apparent = spawnSync('du', ['-s', '-b', dir], { encoding: 'utf8' });
  const num = (r) => (r.status === 0 ? Number(r.stdout.split(/\s/)[0]) : null);
  return { allocated: num(alloc), apparent: num(apparent) };
}

async function filesEqual(a, b) {
  const [sa, sb] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
  if (sa.size !== sb.size) return false;
  const ha = await fsp.open(a);
  const hb = await fsp.open(b);
  try {
    const size = 1 << 20;
    const ba = Buffer.allocUnsafe(size);
    const bb = Buffer.allocUnsafe(size);
    for (;;) {
      const [ra, rb] = await Promise.all([ha.read(ba, 0, size, null), hb.read(bb, 0, size, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await ha.close();
    await hb.close();
  }
}

// ---------------------------------------------------------------------------------------------
// running one measured step

/**
 * Runs `cmd args` under GNU time -v (when there is one), after a `sync` so that one step's dirty
 * pages are not flushed during the next. Returns wall time (measured here), user and system CPU,
 * peak RSS, minor page faults and involuntary context switches (from time -v), exit code and the
 * paths of the captured output. Faults and switches tell a step that paid for fresh memory, or
 * waited for a core, where time alone cannot.
 */
async function measure(name, cmd, args, { env, cwd, logDir, okCodes = [0] }) {
  spawnSync('sync');
  if (STATE.waitIdle > 0 && !name.startsWith('setup')) await waitIdle(STATE.waitIdle);
  await fsp.mkdir(logDir, { recursive: true });
  const outFile = path.join(logDir, `${name}.out`);
  const errFile = path.join(logDir, `${name}.err`);
  const timeFile = path.join(logDir, `${name}.time`);
  const out = fs.openSync(outFile, 'w');
  const err = fs.openSync(errFile, 'w');
  const useTime = STATE.gnuTime;
  const [c, a] = useTime ? [GNU_TIME, ['-v', '-o', timeFile, cmd, ...args]] : [cmd, args];
  const busy0 = machineBusySeconds();
  const t0 = process.hrtime.bigint();
  const code = await new Promise((resolve, reject) => {
    // its own process group, so that Ctrl-C on the harness can stop the tool under time too
    const p = spawn(c, a, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', out, err], detached: true });
    STATE.child = p;
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve(code ?? 128 + (os.constants.signals[signal] ?? 0)));
  });
  STATE.child = null;
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const busy1 = machineBusySeconds();
  fs.closeSync(out);
  fs.closeSync(err);
  let user = null;
  let sys = null;
  let maxRss = null;
  let minorFaults = null;
  let involuntarySwitches = null;
  if (useTime) {
    const t = await fsp.readFile(timeFile, 'utf8').catch(() => '');
    const get = (re) => {
      const m = re.exec(t);
      return m ? Number(m[1]) : null;
    };
    user = get(/User time \(seconds\): ([\d.]+)/);
    sys = get(/System time \(seconds\): ([\d.]+)/);
    const kb = get(/Maximum resident set size \(kbytes\): (\d+)/);
    maxRss = kb === null ? null : kb * 1024;
    minorFaults = get(/Minor \(reclaiming a frame\) page faults: (\d+)/);
    involuntarySwitches = get(/Involuntary context switches: (\d+)/);
  }
  const ok = okCodes.includes(code);
  // CPU that other processes on the machine used during the step, as cores on average
  const others = busy0 !== null && busy1 !== null && user !== null ? Math.max(0, busy1 - busy0 - user - sys) : null;
  const otherCores = others === null ? null : others / wall;
  const r = { name, command: [cmd, ...args].join(' '), exitCode: code, ok, wall, user, sys, maxRss, minorFaults, involuntarySwitches, otherCpuSeconds: others, otherCores, stdout: outFile, stderr: errFile };
  const cpu = user !== null && sys !== null ? `, cpu ${fmtSecs(user + sys)}` : '';
  const busy = otherCores !== null && otherCores >= 0.1 ? `, OTHER PROCESSES used ${otherCores.toFixed(2)} cores meanwhile` : '';
  const rss = maxRss !== null ? `, peak ${fmtBytes(maxRss)}` : '';
  log(`  ${name}: ${fmtSecs(wall)}${cpu}${rss}${busy}${code === 0 ? '' : `, exit ${code}`}${ok ? '' : ' FAILED'}`);
  if (!ok) {
    const tail = (await fsp.readFile(errFile, 'utf8').catch(() => '')).trim().split('\n').slice(-8).join('\n    ');
    if (tail) log(`    ${tail}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// the tools

/**
 * azbk, embedded (a vault folder) or through `azbk vault serve` on 127.0.0.1 (`https`); with
 * `journal`, `azbk watch --include SOURCE` keeps the change journal (same AZBK_HOME) from before
 * the initial backup until after the tool's last backup, so its re-runs are "optimized".
 */
function azbkTool(name, { https = false, journal = false }, work, source) {
  return {
    name,
    available: () => fs.existsSync(path.join(ROOT, 'dist', 'cli', 'main.js')),
    installHint: 'run npm run build (npm run bench does)',
    version: () => {
      const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
      const v = `azbk ${pkg.version} (${STATE.git.commit}${STATE.git.dirty ? ', working tree modified' : ''})`;
      return `${v}${https ? ' through azbk vault serve on 127.0.0.1' : ''}${journal ? ' with azbk watch keeping the change journal' : ''}`;
    },
    compression: 'zstd level 3 (the vault default)',
    // azbk exits 3 when some items were skipped; it still made a point
    okCodes: [0, 3],
    dir: path.join(work, name),
    /** the running `azbk watch` (journal only), see startWatcher */
    watcher: null,
    env() {
      return { AZBK_HOME: path.join(this.dir, 'home') };
    },
    repo() {
      return path.join(this.dir, 'vault');
    },
    cache() {
      return path.join(this.dir, 'home');
    },
    async setup(m) {
      const creds = path.join(this.dir, 'vault.VaultCredentials');
      if (!https) {
        const r1 = await m('setup-vault', process.execPath, [AZBK, 'vault', 'create', '--path', this.repo(), '--name', 'bench', '--credentials-out', creds]);
        if (!r1.ok) return r1;
      } else {
        const r1 = await m('setup-vault', process.execPath, [AZBK, 'vault', 'create', '--path', this.repo(), '--name', 'bench']);
        if (!r1.ok) return r1;
        const url = await startVaultServer(this.repo());
        const r2 = await m('setup-credentials', process.execPath, [AZBK, 'vault', 'credentials', '--path', this.repo(), '--endpoint', url, '--out', creds]);
        if (!r2.ok) return r2;
      }
      const r3 = await m('setup-register', process.execPath, [AZBK, 'register', '--vault-credentials', creds, '--generate-passphrase', path.join(this.dir, 'passphrase.txt'), '--machine-name', 'bench']);
      if (!r3.ok || !journal) return r3;
      log(`  starting azbk watch --include ${source} (not timed) and waiting for it to be ready`);
      this.watcher = startWatcher(source, this.env(), this.dir);
      try {
        const secs = await this.watcher.ready;
        log(`  watcher ready after ${fmtSecs(secs)} (pid ${this.watcher.child.pid})`);
        return r3;
      } catch (err) {
        log(`  azbk watch FAILED: ${err.message}`);
        await this.stop();
        return { ...r3, name: 'setup-watch', command: `${process.execPath} ${AZBK} watch --include ${source} --json`, ok: false, exitCode: this.watcher?.info?.exitCode ?? 1, error: err.message };
      }
    },
    async backup(m, run) {
      const r = await m(`backup-${run}`, process.execPath, [AZBK, 'backup', '--now', '--include', source, '--json']);
      let res = null;
      try {
        res = JSON.parse(fs.readFileSync(r.stdout, 'utf8'));
      } catch {
        // no result: the step failed, and says so
      }
      r.azbkStats = res?.stats ?? null;
      // full scan or optimized (the change journal), and why
      r.azbkScan = res?.scan ?? null;
      if (r.azbkScan) log(`    scan: ${r.azbkScan.mode}${r.azbkScan.reason ? ` (${r.azbkScan.reason})` : ''}`);
      if (journal && run !== 'initial' && r.ok && r.azbkScan?.mode !== 'optimized') {
        log(`  !!! WARNING: ${name} ${run} re-run was NOT optimized (${r.azbkScan ? `${r.azbkScan.mode}: ${r.azbkScan.reason}` : 'no scan in its result'}): this column does not measure the change journal`);
      }
      return r;
    },
    restore: (m, target) => m('restore', process.execPath, [AZBK, 'restore', '--point', 'latest', '--target', target, '--json']),
    check: (m) => m('check', process.execPath, [AZBK, 'verify', '--read-data', '--json']),
    // the change journal only: wait until it has recorded the changed files; stop the watcher
    afterChange: journal ? function (files) {
      const child = this.watcher?.child;
      return child ? waitForJournal(this.cache(), files, () => child.exitCode === null && child.signalCode === null) : null;
    } : undefined,
    stop: journal ? async function () {
      return this.watcher ? stopWatcher(this.watcher, path.join(this.dir, 'logs')) : null;
    } : undefined,
  };
}

/**
 * Starts `azbk watch --include SOURCE --json` in the background (not timed). Returns
 * { child, ready, exited, info }: `ready` resolves with the seconds it took to print its ready event
 * ({"event": "ready", ...}, pretty-printed over several lines) or rejects if it exits first or
 * takes longer than WATCH_READY_TIMEOUT_S.
 */
function startWatcher(source, env, cwd) {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [AZBK, 'watch', '--include', source, '--json'], { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const w = { child, stdout: '', stderr: '', exited: null, info: null, ready: null, readySeconds: null };
  STATE.watchers.add(w);
  child.stdout.on('data', (b) => (w.stdout += b.toString()));
  child.stderr.on('data', (b) => (w.stderr += b.toString()));
  w.exited = new Promise((resolve) => {
    child.on('error', (err) => {
      w.stderr += `${err.message}\n`;
      resolve(127);
    });
    child.on('exit', (code, signal) => resolve(code ?? 128 + (os.constants.signals[signal] ?? 0)));
  }).then((code) => {
    STATE.watchers.delete(w);
    return code;
  });
  const isReady = () => {
    // the whole output (pretty-printed JSON), or any one line (compact JSON)
    for (const text of [w.stdout, ...w.stdout.split('\n')]) {
      try {
        if (JSON.parse(text)?.event === 'ready') return true;
      } catch {
        // not (yet) a whole JSON value
      }
    }
    return false;
  };
  w.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready event after ${WATCH_READY_TIMEOUT_S} s`)), WATCH_READY_TIMEOUT_S * 1000);
    const check = () => {
      if (!isReady()) return;
      clearTimeout(timer);
      child.stdout.off('data', check);
      resolve(Number(process.hrtime.bigint() - t0) / 1e9);
    };
    child.stdout.on('data', check);
    void w.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`azbk watch exited (${code}) before it was ready: ${w.stderr.trim().split('\n').slice(-3).join(' / ')}`));
    });
  });
  w.ready.then((secs) => (w.readySeconds = secs), () => {}); // a failure is the caller's to report
  return w;
}

/** The watcher's peak RSS and CPU seconds so far, from /proc (null where there is none). */
function procUsage(pid) {
  const usage = { peakRss: null, cpuSeconds: null };
  try {
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (kb) usage.peakRss = Number(kb[1]) * 1024;
    // fields after the command name: state is field 3, utime 14, stime 15 (clock ticks, 100/s)
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    usage.cpuSeconds = (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    // gone, or not Linux
  }
  return usage;
}

/**
 * Stops a watcher: SIGTERM, then waits for it to exit (SIGKILL after 30 s). Saves its output
 * under logDir and returns what is known about it (time to ready, peak RSS, CPU, exit code).
 */
async function stopWatcher(w, logDir) {
  if (w.info !== null) return w.info;
  const usage = procUsage(w.child.pid);
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  let timer;
  const killed = new Promise((resolve) => {
    timer = setTimeout(() => {
      log(`  azbk watch (pid ${w.child.pid}) did not stop within 30 s of SIGTERM: SIGKILL`);
      w.child.kill('SIGKILL');
      resolve();
    }, 30_000);
  });
  const exitCode = await Promise.race([w.exited, killed.then(() => w.exited)]);
  clearTimeout(timer);
  w.info = { readySeconds: w.readySeconds ?? null, peakRss: usage.peakRss, cpuSeconds: usage.cpuSeconds, exitCode };
  try {
    fs.mkdirSync(logDir, { recursive: true });
    fs.writeFileSync(path.join(logDir, 'watch.out'), w.stdout);
    fs.writeFileSync(path.join(logDir, 'watch.err'), w.stderr);
  } catch {
    // the work folder is going anyway
  }
  log(`  stopped azbk watch (pid ${w.child.pid}): exit ${exitCode}${usage.peakRss !== null ? `, peak ${fmtBytes(usage.peakRss)}, cpu ${fmtSecs(usage.cpuSeconds)}` : ''}`);
  return w.info;
}

/**
 * Waits until the change journal (AZBK_HOME/journal/changes.log) has a line for every one of
 * `files` (absolute paths), then until it has stopped growing for a second, so that the
 * optimized re-run sees the whole change. Gives up after JOURNAL_CATCH_UP_TIMEOUT_S, or at once
 * when the watcher is gone (`alive()` false), and says so.
 */
async function waitForJournal(home, files, alive) {
  const changesLog = path.join(home, 'journal', 'changes.log');
  const t0 = Date.now();
  const want = new Set(files);
  const seen = new Set();
  let offset = 0;
  let rest = '';
  let lastSize = -1;
  let stableSince = null;
  for (;;) {
    let size = 0;
    try {
      const buf = fs.readFileSync(changesLog);
      size = buf.length;
      if (size < offset) {
        offset = 0;
        rest = '';
      }
      const lines = (rest + buf.subarray(offset).toString('utf8')).split('\n');
      offset = size;
      rest = lines.pop();
      for (const l of lines) {
        try {
          const p = JSON.parse(l);
          if (want.has(p)) seen.add(p);
        } catch {
          // not one of ours
        }
      }
    } catch {
      // no journal yet
    }
    const now = Date.now();
    if (size !== lastSize) stableSince = now;
    lastSize = size;
    const secs = (now - t0) / 1000;
    if (seen.size === want.size && now - stableSince >= 1000) {
      log(`  the change journal recorded all ${want.size} changed files after ${fmtSecs(secs)}`);
      return { ok: true, seconds: secs, expected: want.size, seen: seen.size, journalBytes: size };
    }
    const gone = !alive();
    if (gone || secs > JOURNAL_CATCH_UP_TIMEOUT_S) {
      log(`  !!! WARNING: ${gone ? 'azbk watch is not running any more' : `after ${JOURNAL_CATCH_UP_TIMEOUT_S} s`}: the change journal has recorded ${seen.size} of the ${want.size} changed files; an optimized re-run would miss changes`);
      return { ok: false, seconds: secs, expected: want.size, seen: seen.size, journalBytes: size, watcherGone: gone };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts `azbk vault serve` for the rest of this run; resolves with its https URL. */
function startVaultServer(repo) {
  const server = spawn(process.execPath, [AZBK, 'vault', 'serve', '--path', repo, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  process.on('exit', () => server.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (b) => {
      out += b.toString();
      const match = /listening on (https:\/\/\S+)/.exec(out);
      if (match) {
        // The server must not keep this process alive; it is killed when this process exits.
        server.unref();
        server.stdout.unref();
        resolve(match[1]);
      }
    });
    server.on('exit', () => reject(new Error(`azbk vault serve exited: ${out}`)));
  });
}

function makeTools(source, work, passphrase) {
  const tools = {
    azbk: azbkTool('azbk', {}, work, source),
    // The same agent, backing up to the same kind of vault folder through `azbk vault serve` on
    // 127.0.0.1 (HTTPS, self-signed certificate pinned by the credentials).
    'azbk-https': azbkTool('azbk-https', { https: true }, work, source),
    // The same embedded agent, with `azbk watch` keeping the change journal in the background
    // from before the initial backup: its re-runs examine only what changed ("optimized").
    'azbk-journal': azbkTool('azbk-journal', { journal: true }, work, source),
    restic: {
      name: 'restic',
      available: () => which('restic') !== null,
      installHint: 'apt-get install -y restic',
      version: () => firstLine('restic', ['version']),
      compression: 'zstd, --compression auto (restic\'s default mode; repository format 2)',
      // 3: some source files could not be read, the snapshot was still made
      okCodes: [0, 3],
      dir: path.join(work, 'restic'),
      env() {
        return { RESTIC_PASSWORD: passphrase, RESTIC_REPOSITORY: this.repo(), RESTIC_CACHE_DIR: this.cache(), RESTIC_PROGRESS_FPS: '0.016' };
      },
      repo() {
        return path.join(this.dir, 'repo');
      },
      cache() {
        return path.join(this.dir, 'cache');
      },
      setup: (m) => m('setup-init', 'restic', ['init', '--repository-version', '2']),
      backup: (m, run) => m(`backup-${run}`, 'restic', ['backup', '--compression', 'auto', '--host', 'bench', source]),
      restore: (m, target) => m('restore', 'restic', ['restore', 'latest', '--target', target]),
      check: (m) => m('check', 'restic', ['check', '--read-data']),
    },
    borg: {
      name: 'borg',
      available: () => which('borg') !== null,
      installHint: 'apt-get install -y borgbackup',
      version: () => firstLine('borg', ['--version']),
      compression: 'zstd level 3 (--compression zstd,3)',
      // 1: finished with warnings (for example a file changed while read)
      okCodes: [0, 1],
      dir: path.join(work, 'borg'),
      env() {
        return {
          BORG_PASSPHRASE: passphrase,
          BORG_REPO: this.repo(),
          BORG_BASE_DIR: this.cache(),
          BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
          BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'no',
        };
      },
      repo() {
        return path.join(this.dir, 'repo');
      },
      cache() {
        return path.join(this.dir, 'base');
      },
      async setup(m) {
        const r = await m('setup-init', 'borg', ['init', '--encryption', 'repokey-blake2']);
        if (r.ok) return r;
        return m('setup-init-repokey', 'borg', ['init', '--encryption', 'repokey']);
      },
      backup: (m, run) => m(`backup-${run}`, 'borg', ['create', '--compression', 'zstd,3', `::run-${run}`, source]),
      // borg extract writes into the current folder, with the absolute path minus its leading /
      restore: (m, target) => m('restore', 'borg', ['extract', '::run-changed'], { cwd: target }),
      check: (m) => m('check', 'borg', ['check', '--verify-data']),
    },
  };
  return tools;
}

// ---------------------------------------------------------------------------------------------
// the run

const STATE = { waitIdle: 0, gnuTime: false, interrupted: false, child: null, watchers: new Set(), git: { commit: 'unknown', dirty: false }, changed: [], source: null, warmTarget: null };

/** Appends CHANGE_SUFFIX to the chosen files, remembering each one's size and times. */
async function applyChange(source, files) {
  // after Ctrl-C the harness only winds down: no change to put back
  if (STATE.interrupted) throw new Error('interrupted');
  for (const rel of files) {
    const f = path.join(source, rel);
    const st = await fsp.stat(f);
    STATE.changed.push({ file: f, size: st.size, atime: st.atime, mtime: st.mtime });
    await fsp.appendFile(f, CHANGE_SUFFIX);
  }
}

/**
 * Undoes applyChange: truncates each file back and resets its access and modification times (to
 * the precision of a JS Date; the ctime cannot be reset, so a later run sees these files as
 * touched, which does not matter as every run starts from fresh repositories).
 */
/** Sends `sig` to every azbk watch still running (synchronous: for signal and exit handlers). */
function killWatchers(sig) {
  for (const w of STATE.watchers) {
    try {
      w.child.kill(sig);
    } catch {
      // already gone
    }
  }
}

/** A step's name, with the run's number when the step ran more than once ('restore 2'). */
function runLabel(r, k, s) {
  const list = r.runs?.[k];
  return list !== undefined && list.length > 1 ? `${k} ${list.indexOf(s) + 1}` : k;
}

/** `list` begun at its `by`-th item (counted round), the ones before it moved to the end. */
function rotated(list, by) {
  const at = list.length === 0 ? 0 : by % list.length;
  return [...list.slice(at), ...list.slice(0, at)];
}

/** Each run of step `k` of a tool's results `r`: several with --repeat, else the step's one. */
function runsOf(r, k) {
  return r?.runs?.[k] ?? [r?.steps?.[k]];
}

/** Every run of a tool's steps, as [label (see runLabel), run]: a repeated step's each run once. */
function everyRun(r) {
  return [...Object.entries(r.steps).filter(([k]) => !r.runs?.[k]), ...Object.entries(r.runs ?? {}).flatMap(([k, list]) => list.map((s) => [runLabel(r, k, s), s]))];
}

/** The run with the median time (the lower of the two middle ones), or the first that failed. */
function medianRun(runs) {
  const failed = runs.find((s) => !s.ok);
  if (failed) return failed;
  return [...runs].sort((a, b) => a.wall - b.wall)[Math.floor((runs.length - 1) / 2)];
}

/** The azbk-journal re-runs that were not optimized: ['backup-unchanged: full (why)', ...]. */
function journalNotOptimized(result) {
  const r = result.tools['azbk-journal'];
  if (!r) return [];
  const bad = [];
  for (const k of ['unchanged', 'changed']) {
    for (const s of runsOf(r, k)) {
      if (s?.ok && s.azbkScan?.mode !== 'optimized') bad.push(`${s.name}: ${s.azbkScan ? `${s.azbkScan.mode} (${s.azbkScan.reason})` : 'no scan mode in its result'}`);
    }
  }
  return bad;
}

function revertChange() {
  let n = 0;
  for (const c of STATE.changed) {
    try {
      fs.truncateSync(c.file, c.size);
      fs.utimesSync(c.file, c.atime, c.mtime);
      n++;
    } catch (err) {
      process.stderr.write(`bench: could not revert ${c.file}: ${err.message}\n`);
    }
  }
  if (STATE.changed.length > 0) log(`reverted the change to ${n} of ${STATE.changed.length} file(s) in ${STATE.source}`);
  STATE.changed = [];
}

function machineInfo() {
  const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const flags = /^flags\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.split(' ') ?? [];
  return {
    nproc: typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length,
    totalMemoryBytes: os.totalmem(),
    cpuModel: model,
    cpuFlags: ['aes', 'vaes', 'sha_ni', 'avx2', 'avx512f'].filter((f) => flags.includes(f)),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

function gitInfo() {
  const rev = spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const st = spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'bin', 'package.json', 'package-lock.json'], { encoding: 'utf8' });
  return { commit: rev.status === 0 ? rev.stdout.trim() : 'unknown', dirty: st.status === 0 && st.stdout.trim() !== '', dirtyFiles: st.status === 0 ? st.stdout.split('\n').filter(Boolean) : [] };
}

function fsInfo(dir) {
  const r = spawnSync('df', ['-PT', dir], { encoding: 'utf8' });
  const line = r.status === 0 ? r.stdout.trim().split('\n')[1] : null;
  if (!line) return null;
  const [device, type] = line.split(/\s+/);
  return { device, type };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const source = opts.source;
  STATE.source = source;
  if (opts.azbk !== null) {
    ROOT = opts.azbk;
    AZBK = path.join(ROOT, 'bin', 'azbk');
    if (!fs.existsSync(AZBK)) usage(`${AZBK} not found: --azbk takes an azbk checkout`);
  }
  const sst = await fsp.stat(source).catch(() => null);
  if (!sst?.isDirectory()) usage(`${source} is not a folder`);
  if (opts.restoreTo !== null && !(await fsp.stat(opts.restoreTo).catch(() => null))?.isDirectory()) usage(`--restore-to: ${opts.restoreTo} is not a folder`);

  STATE.gnuTime = hasGnuTime();
  if (!(opts.waitIdle >= 0)) usage('--wait-idle takes a number of seconds');
  STATE.waitIdle = opts.waitIdle;
  STATE.git = gitInfo();
  if (!STATE.gnuTime) log(`WARNING: GNU time not found at ${GNU_TIME} (apt-get install -y time): peak memory and CPU time will be n/a`);

  // work folder: on the same disk as the source's parent unless --work says otherwise
  const workParent = opts.work ?? path.dirname(source);
  await fsp.mkdir(workParent, { recursive: true });
  const work = await fsp.mkdtemp(path.join(workParent, 'azbk-bench-'));
  const rel = path.relative(source, work);
  if (!rel.startsWith('..') && !path.isAbsolute(rel)) {
    await fsp.rm(work, { recursive: true, force: true });
    usage(`the work folder ${work} would be inside PATH; use --work`);
  }
  const sameDevice = (await fsp.stat(work)).dev === sst.dev;
  log(`work folder ${work}${sameDevice ? ' (same file system as PATH)' : ' (NOT the same file system as PATH)'}`);

  const onSignal = (sig) => {
    STATE.interrupted = true;
    if (STATE.child) {
      try {
        process.kill(-STATE.child.pid, sig);
      } catch {
        // already gone
      }
    }
    killWatchers('SIGTERM');
    revertChange();
    // give the stopped tool (and any azbk watch) a moment to exit before its folder goes
    setTimeout(() => {
      if (!opts.keep) fs.rmSync(work, { recursive: true, force: true });
      if (STATE.warmTarget) fs.rmSync(STATE.warmTarget, { recursive: true, force: true });
      process.exit(130);
    }, 1500);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // last resort: no azbk watch outlives the harness, and the tree is put back, whatever way it ends
  process.on('exit', () => {
    killWatchers('SIGKILL');
    revertChange();
  });

  const passphrase = `bench-${createHash('sha256').update(`${Date.now()}-${process.pid}-${Math.random()}`).digest('hex').slice(0, 32)}`;
  const allTools = makeTools(source, work, passphrase);
  const tools = [];
  const missing = [];
  for (const name of opts.tools) {
    const t = allTools[name];
    if (t.available()) tools.push(t);
    else missing.push(`${name} (${t.installHint})`);
  }
  if (missing.length > 0) log(`not installed, left out: ${missing.join(', ')}`);
  if (tools.length === 0) usage('none of the chosen tools is installed');

  const result = {
    date: new Date().toISOString(),
    source,
    work,
    repeat: opts.repeat,
    sameFileSystem: sameDevice,
    fileSystem: fsInfo(work),
    restoreTo: opts.restoreTo === null ? null : { dir: opts.restoreTo, fileSystem: fsInfo(opts.restoreTo) },
    machine: machineInfo(),
    azbkCheckout: ROOT,
    azbkCommit: STATE.git.commit,
    azbkWorkingTreeModified: STATE.git.dirty,
    azbkModifiedFiles: STATE.git.dirtyFiles,
    gnuTime: STATE.gnuTime,
    command: [path.relative(path.resolve(HERE, '..'), process.argv[1] ?? ''), ...process.argv.slice(2)].join(' '),
    notes: [
      'The page cache cannot be dropped reliably here, so the tree is read once (tar | cat) before the first step and every step sees a warm cache, and read again before each initial backup, as are each tool\'s repository and local cache before its restores and check (not timed: the machine may page out what was not touched for a minute or so); the tree is also copied once to where the restores go, and removed, so that no tool pays alone for a file system\'s first writes, and before each restore as many bytes as the tree holds are written there and removed (not timed), so that no tool pays alone for memory the machine had taken back.',
      'A sync runs (untimed) before every step so one step\'s dirty pages are not flushed during the next.',
      opts.restoreTo === null ? 'Restores go into a fresh folder in the work folder.' : `Restores go into a fresh folder under ${opts.restoreTo} (--restore-to), not the work folder.`,
      'Repository size is du of the repository folder only; local caches (restic cache, borg cache, AZBK_HOME) are reported separately.',
      ...(opts.repeat > 1 ? [`--repeat ${opts.repeat}: the unchanged re-run and the restore ran ${opts.repeat} times per tool, the tools taking turns; the table gives each tool's median run (its time, CPU and ratio), the peak counts every run.`] : []),
      'Peak RSS is GNU time -v "Maximum resident set size" of the tool process.',
      'otherCores per step: CPU used by other processes during the step (from /proc/stat), as cores on average; above 0.25 the step is marked with * in the table.',
      'azbkScan per azbk backup step: full scan or optimized (the change journal), and why, from the backup\'s JSON result.',
      ...(opts.tools.includes('azbk-journal')
        ? ['azbk-journal: azbk watch --include PATH (same AZBK_HOME) runs in the background, not timed, from before its initial backup until after its last one, so also during the other tools\' steps in between (idle there: it only waits for inotify events); after the change the harness waits (not timed) until the journal has recorded every changed file.']
        : []),
    ],
    tree: null,
    versions: {},
    compression: {},
    warmup: null,
    warmupRestore: null,
    floor: null,
    change: null,
    tools: {},
  };

  try {
    log(`scanning ${source}`);
    const tree = await scanTree(source);
    result.tree = { files: tree.files.length, dirs: tree.dirs, symlinks: tree.symlinks, bytes: tree.bytes };
    log(`  ${tree.files.length} files, ${tree.dirs} folders, ${tree.symlinks} links, ${fmtBytes(tree.bytes)}`);
    if (tree.files.length === 0) throw new Error(`${source} has no regular files`);

    for (const t of tools) {
      result.versions[t.name] = t.version();
      result.compression[t.name] = t.compression;
    }
    result.versions.tar = firstLine('tar', ['--version']);
    result.versions.zstd = which('zstd') ? firstLine('zstd', ['--version']) : null;
    result.versions.time = STATE.gnuTime ? firstLine(GNU_TIME, ['--version']) : null;

    const sh = (name, script) => measure(name, 'bash', ['-o', 'pipefail', '-c', script], { env: {}, cwd: work, logDir: path.join(work, 'logs') });
    const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

    // The first tool to restore would otherwise pay alone for what a file system's first writes
    // cost (on a fresh virtual machine, a tmpfs's first pages took 2-3 s more of system time):
    // the tree is copied to where the restores go once, and removed; before the read below, so
    // that the copy does not push the tree out of the page cache.
    STATE.warmTarget = await fsp.mkdtemp(path.join(opts.restoreTo ?? work, 'azbk-bench-warmup-'));
    log(`warm-up: copying the tree once to ${opts.restoreTo ?? 'the work folder'} and removing it, so that every tool's restore writes into a used file system`);
    result.warmupRestore = await sh('warmup-restore', `tar cf - -C ${q(source)} . | tar xf - -C ${q(STATE.warmTarget)}`);
    if (!result.warmupRestore.ok) log(`  warning: the copy failed (see ${path.join(work, 'logs')}): the first restore may pay for the file system's first writes`);
    await fsp.rm(STATE.warmTarget, { recursive: true, force: true });
    STATE.warmTarget = null;
    // warm-up: GNU tar does not read file contents when its output is /dev/null, hence the cat
    log('warm-up: reading the whole tree once (tar | cat > /dev/null) so that every tool sees a warm page cache');
    result.warmup = await sh('warmup', `tar cf - -C ${q(source)} . | cat > /dev/null`);

    if (opts.floor) {
      if (result.versions.zstd) {
        log('floor: tar | zstd -T0 -3 > /dev/null');
        result.floor = await sh('floor-tar-zstd', `tar cf - -C ${q(source)} . | zstd -q -T0 -3 > /dev/null`);
      } else log('floor: zstd not installed (apt-get install -y zstd), skipped');
    }

    // This machine pages out memory left untouched for about a minute (page cache included), so
    // what a step reads is read once just before it, not timed: the tree before each initial
    // backup, and the tool's repository before each restore and check. Otherwise whichever tool
    // came later, or restored first after the backups, read from disk where the others did not.
    // Memory untouched for a while costs the first writer dear on these virtual machines (the
    // host takes free pages back): a 4 GiB restore into tmpfs took 10-12 s first, with 11-15 s of
    // system time, and 5.7-7.8 s once memory had just been written and freed. So before each
    // restore, as much as the tree holds is written into the restore's file system and removed,
    // untimed: every restore writes into memory that was just in use, whichever tool goes first.
    const freshPages = (dir, bytes) => {
      const file = path.join(dir, 'azbk-bench-pages');
      const ok = spawnSync('bash', ['-c', `head -c ${Math.ceil(bytes * 1.1)} /dev/zero > ${q(file)}`], { stdio: 'ignore' }).status === 0;
      fs.rmSync(file, { force: true });
      if (!ok) log('  warning: writing the restore\'s pages ahead failed');
    };
    const warm = (what, dir) => spawnSync('bash', ['-o', 'pipefail', '-c', `tar cf - -C ${q(dir)} . | cat > /dev/null`], { stdio: 'ignore' }).status === 0 || log(`  warning: reading ${what} ahead failed`);

    const m = (t) => (name, cmd, args, extra = {}) =>
      measure(name, cmd, args, { env: t.env(), cwd: extra.cwd ?? t.dir, logDir: path.join(t.dir, 'logs'), okCodes: name.startsWith('setup') ? [0] : t.okCodes });

    // 1: set up each tool and run its initial and unchanged backups, tool by tool
    for (const t of tools) {
      await fsp.mkdir(t.dir, { recursive: true });
      const r = (result.tools[t.name] = { version: result.versions[t.name], compression: t.compression, steps: {}, failed: null });
      log(`${t.name}: setup`);
      const s = await t.setup(m(t));
      r.steps.setup = s;
      if (!s.ok) {
        r.failed = 'setup';
        if (t.stop) r.watcher = await t.stop();
        continue;
      }
      log(`${t.name}: initial backup`);
      warm('the tree', source);
      r.steps.initial = await t.backup(m(t), 'initial');
      if (!r.steps.initial.ok) {
        r.failed = 'initial';
        if (t.stop) r.watcher = await t.stop();
        continue;
      }
      log(`${t.name}: unchanged re-run`);
      r.steps.unchanged = await t.backup(m(t), 'unchanged');
      r.runs = { unchanged: [r.steps.unchanged], restore: [] };
    }

    // 1b: with --repeat N, the unchanged re-run N - 1 times more, the tools taking turns, so that
    // a spell of the machine's own slows them alike; the table gives each tool's median
    for (let rep = 2; rep <= opts.repeat; rep++) {
      for (const t of tools) {
        const r = result.tools[t.name];
        if (r.failed || !r.steps.unchanged?.ok) continue;
        log(`${t.name}: unchanged re-run ${rep} of ${opts.repeat}`);
        r.runs.unchanged.push(await t.backup(m(t), `unchanged-${rep}`));
      }
    }
    for (const t of tools) {
      const r = result.tools[t.name];
      if (!r.runs) continue;
      r.steps.unchanged = medianRun(r.runs.unchanged);
      if (!r.steps.unchanged.ok) {
        r.failed ??= 'unchanged';
        if (t.stop) r.watcher = await t.stop();
      }
    }

    // 2: change every Nth file once; every tool's third run sees the same changed tree
    const chosen = tree.files.filter((_, i) => i % opts.changeEvery === 0);
    await applyChange(source, chosen);
    const changedBytes = chosen.length * CHANGE_SUFFIX.length;
    let chosenSize = 0;
    for (const c of STATE.changed) chosenSize += c.size;
    result.change = { every: opts.changeEvery, files: chosen.length, percentOfFiles: (100 * chosen.length) / tree.files.length, appendedBytesEach: CHANGE_SUFFIX.length, sizeOfChangedFiles: chosenSize };
    log(`changed ${chosen.length} of ${tree.files.length} files (every ${opts.changeEvery}th by sorted path; ${CHANGE_SUFFIX.length} bytes appended to each, ${changedBytes} in all; those files hold ${fmtBytes(chosenSize)})`);
    // a change journal must have recorded the change before its re-run starts (not timed)
    for (const t of tools) {
      if (result.tools[t.name].failed || !t.afterChange) continue;
      log(`${t.name}: waiting for the change journal to record the changed files`);
      result.tools[t.name].journalCatchUp = await t.afterChange(chosen.map((f) => path.join(source, f)));
    }

    for (const t of tools) {
      const r = result.tools[t.name];
      if (r.failed) continue;
      log(`${t.name}: re-run after the change`);
      r.steps.changed = await t.backup(m(t), 'changed');
      if (!r.steps.changed.ok) r.failed = 'changed';
      // its last backup: the watcher is not needed any more (and stays out of the restores)
      if (t.stop) r.watcher = await t.stop();
    }

    // 3: restore each tool's latest point into a fresh folder, check a sample, remove it
    const sample = new Set(chosen);
    for (let i = Math.floor(opts.changeEvery / 2); i < tree.files.length; i += opts.changeEvery) sample.add(tree.files[i]);
    sample.add(tree.files[tree.files.length - 1]); // so a tree of a few big files has an unchanged one checked too
    // (with --repeat N, N times, the tools taking turns; the sample is checked after the first).
    // Each round starts with the next tool: the first restore of a run was up to 1.5x slower than
    // the ones after it whichever tool made it (restic first, then azbk, two rounds, kernel tree:
    // restic 6.52 / 4.80 s, azbk 4.06 / 3.08 s), so one tool always first carried that alone.
    for (let rep = 1; rep <= opts.repeat; rep++) for (const t of rotated(tools, rep - 1)) {
      const r = result.tools[t.name];
      if (r.failed) continue;
      const target = opts.restoreTo === null ? path.join(t.dir, 'restore') : path.join(opts.restoreTo, `azbk-bench-restore-${t.name}`);
      await fsp.rm(target, { recursive: true, force: true });
      await fsp.mkdir(target, { recursive: true });
      log(`${t.name}: restore${opts.repeat > 1 ? ` ${rep} of ${opts.repeat}` : ''}`);
      const named = (name, ...rest) => m(t)(rep > 1 ? `${name}-${rep}` : name, ...rest);
      warm('the repository', t.repo());
      warm('the local cache', t.cache());
      freshPages(target, tree.bytes);
      const run = await t.restore(named, target);
      r.runs.restore.push(run);
      r.steps.restore = medianRun(r.runs.restore);
      if (!run.ok) r.failed = 'restore';
      else if (rep === 1 && (opts.verify === 'all' || (opts.verify === 'azbk' && t.name.startsWith('azbk')))) {
        const root = path.join(target, source);
        const bad = [];
        let checked = 0;
        for (const relf of sample) {
          checked++;
          const eq = await filesEqual(path.join(source, relf), path.join(root, relf)).catch(() => false);
          if (!eq) bad.push(relf);
        }
        r.verify = { checked, mismatched: bad.length, examples: bad.slice(0, 5) };
        log(`  verify: ${checked - bad.length} of ${checked} sampled files (all changed ones included) byte-equal${bad.length ? `; MISMATCH e.g. ${bad.slice(0, 3).join(', ')}` : ''}`);
      }
      await fsp.rm(target, { recursive: true, force: true });
    }

    // 3b: check each repository, reading all its data (not counted in the peak: that is the backups' and restores')
    if (opts.check) {
      for (const t of tools) {
        const r = result.tools[t.name];
        if (r.failed) continue;
        log(`${t.name}: check, reading all data`);
        warm('the repository', t.repo());
        warm('the local cache', t.cache());
        r.steps.check = await t.check(m(t));
        if (!r.steps.check.ok) r.failed = 'check';
      }
    }

    // 4: sizes and peaks
    for (const t of tools) {
      const r = result.tools[t.name];
      r.repoSize = fs.existsSync(t.repo()) ? du(t.repo()) : null;
      r.localCacheSize = fs.existsSync(t.cache()) ? du(t.cache()) : null;
      // every run of a repeated step counts
      const measured = everyRun(r).filter(([k, s]) => k !== 'setup' && k !== 'check' && s.maxRss !== null);
      const peak = measured.reduce((best, [k, s]) => (best === null || s.maxRss > best.bytes ? { bytes: s.maxRss, step: k } : best), null);
      r.peakRss = peak;
    }
  } finally {
    // any watcher still running (a failure on the way): stopped before the tree is put back
    for (const t of tools) if (t.stop && result.tools[t.name]) result.tools[t.name].watcher = await t.stop();
    revertChange();
  }

  printTable(result, tools.map((t) => t.name));
  if (opts.json) {
    // the per-step output files go with the work folder unless --keep
    const replacer = (k, v) => (!opts.keep && (k === 'stdout' || k === 'stderr') ? undefined : v);
    await fsp.writeFile(opts.json, `${JSON.stringify(result, replacer, 2)}\n`);
    log(`results written to ${opts.json}`);
  }
  if (opts.keep) log(`kept ${work} (repositories and logs)`);
  else await fsp.rm(work, { recursive: true, force: true });
  const anyFailed = Object.values(result.tools).some((r) => r.failed || (r.verify && r.verify.mismatched > 0));
  const notOptimized = journalNotOptimized(result);
  process.exitCode = anyFailed || notOptimized.length > 0 ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// output

function printTable(result, names) {
  const R = result.tools;
  const base = R.restic && !R.restic.failed ? 'restic' : null;
  let busyMarks = 0;
  const cell = (name, get, fmt, stepKey) => {
    const v = get(R[name]);
    const st = stepKey === undefined ? undefined : R[name]?.steps?.[stepKey];
    if (st !== undefined && !st.ok) return `failed (exit ${st.exitCode})`;
    if (v === null || v === undefined) return R[name]?.failed ? `failed (${R[name].failed})` : 'n/a';
    const b = base ? get(R[base]) : null;
    const ratio = b ? ` (${(v / b).toFixed(2)}x)` : '';
    const busy = stepKey !== undefined && runsOf(R[name], stepKey).some((s) => (s?.otherCores ?? 0) >= BUSY_MARK);
    if (busy) busyMarks++;
    return `${fmt(v)}${ratio}${busy ? ' *' : ''}`;
  };
  const stepCell = (k) => (n) => cell(n, step(k), fmtSecs, k);
  const step = (k) => (r) => (r?.steps?.[k]?.ok ? r.steps[k].wall : null);
  const cpu = (k) => (r) => {
    const s = r?.steps?.[k];
    return s?.ok && s.user !== null ? s.user + s.sys : null;
  };
  const ch = result.change;
  const times = result.repeat > 1 ? ` (median of ${result.repeat})` : '';
  const rows = [
    ['initial backup', stepCell('initial')],
    [`unchanged re-run${times}`, stepCell('unchanged')],
    [`re-run, ${ch ? `${ch.percentOfFiles.toFixed(ch.percentOfFiles < 10 ? 1 : 0)}% of files changed` : 'files changed'}`, stepCell('changed')],
    [`restore${times}`, stepCell('restore')],
    ...(Object.values(R).some((r) => r?.steps?.check) ? [['check, reading all data', stepCell('check')]] : []),
    ['repository size', (n) => cell(n, (r) => r?.repoSize?.allocated ?? null, fmtBytes)],
    ['peak RSS', (n) => cell(n, (r) => r?.peakRss?.bytes ?? null, fmtBytes)],
    ['initial backup CPU (user+sys)', (n) => cell(n, cpu('initial'), fmtSecs)],
  ];
  // azbk's scan mode per backup: full scan or optimized (the change journal)
  const scanOf = (r, k) => {
    const s = r?.steps?.[k];
    if (!s) return 'n/a';
    if (!s.ok) return 'failed';
    return s.azbkScan?.mode ?? '?';
  };
  if (names.some((n) => Object.values(R[n]?.steps ?? {}).some((s) => s.azbkScan))) {
    rows.push([
      'azbk scan: initial / unchanged / changed',
      (n) => (n.startsWith('azbk') ? ['initial', 'unchanged', 'changed'].map((k) => scanOf(R[n], k)).join(' / ') : '-'),
    ]);
  }
  const header = ['', ...names];
  const body = rows.map(([label, f]) => [label, ...names.map(f)]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const out = [];
  const t = result.tree;
  const m = result.machine;
  out.push('');
  out.push(`azbk benchmark, ${result.date}`);
  out.push(`tree: ${result.source}: ${t.files} files, ${t.dirs} folders, ${fmtBytes(t.bytes)}`);
  out.push(`machine: ${m.nproc} cores (${m.cpuModel}), ${fmtBytes(m.totalMemoryBytes)} memory, node ${m.node}, ${result.fileSystem?.type ?? '?'} file system${result.sameFileSystem ? '' : ' (work folder on ANOTHER file system than the tree)'}`);
  if (result.restoreTo) out.push(`restores into ${result.restoreTo.dir} (${result.restoreTo.fileSystem?.type ?? '?'} file system)`);
  out.push(`azbk commit ${result.azbkCommit}${result.azbkWorkingTreeModified ? ` plus uncommitted changes (${result.azbkModifiedFiles.map((l) => l.slice(3)).join(', ')})` : ''}`);
  out.push(`versions: ${names.map((n) => result.versions[n]).join('; ')}`);
  out.push(`compression: ${names.map((n) => `${n} ${result.compression[n]}`).join('; ')}`);
  out.push('cache: the tree was read once before the first step and again before each initial backup, and each repository and local cache before its restores and check (warm page cache for every tool; dropping it is not reliable here); the tree was copied once to where the restores go, and before each restore as many bytes as the tree holds were written there and removed');
  if (ch) out.push(`change: ${CHANGE_SUFFIX.length} bytes appended to ${ch.files} of ${t.files} files (every ${ch.every}th by sorted path), same files for every tool; reverted at the end`);
  out.push('');
  out.push(line(header));
  out.push(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of body) out.push(line(r));
  out.push('');
  out.push(base ? 'Ratios are to restic (below 1 = better than restic).' : 'restic did not run: no ratios.');
  if (busyMarks > 0) out.push(`* other processes on the machine used ${BUSY_MARK} cores or more on average during this step (one of its runs, when repeated): its time is not clean.`);
  const allSteps = Object.values(R).flatMap((r) => everyRun(r).map(([, s]) => s));
  const maxOther = allSteps.reduce((mx, s) => Math.max(mx, s.otherCores ?? 0), 0);
  if (allSteps.length > 0 && result.gnuTime) out.push(`background load: other processes used at most ${maxOther.toFixed(2)} cores on average during any step.`);
  if (result.floor?.ok) {
    const f = result.floor;
    out.push(`floor: tar cf - | zstd -T0 -3 > /dev/null took ${fmtSecs(f.wall)} (${fmtBytes(t.bytes / f.wall)}/s)${f.user !== null ? `, cpu ${fmtSecs(f.user + f.sys)}` : ''}; warm-up read (tar | cat) ${fmtSecs(result.warmup.wall)}`);
  }
  if (result.repeat > 1) {
    for (const k of ['unchanged', 'restore']) {
      const each = names.filter((n) => R[n]?.runs?.[k]?.length).map((n) => `${n} ${R[n].runs[k].map((s) => (s.ok ? s.wall.toFixed(2) : 'failed')).join(' / ')}`);
      if (each.length > 0) out.push(`${k === 'restore' ? 'restore' : 'unchanged re-run'}, each run in order (s): ${each.join('; ')}`);
    }
  }
  for (const n of names) {
    const r = R[n];
    const notes = [];
    if (r.peakRss) notes.push(`peak RSS in ${r.peakRss.step}`);
    if (r.localCacheSize?.allocated != null) notes.push(`local cache/home ${fmtBytes(r.localCacheSize.allocated)}`);
    if (r.verify) notes.push(`restore check ${r.verify.checked - r.verify.mismatched}/${r.verify.checked} sampled files equal`);
    // azbk-journal: its azbk watch (background, not timed) and how soon the journal had the change
    const w = r.watcher;
    if (w) notes.push(`azbk watch (not timed) ready ${w.readySeconds !== null ? `${fmtSecs(w.readySeconds)} after start` : 'never'}, peak RSS ${fmtBytes(w.peakRss)}, cpu ${fmtSecs(w.cpuSeconds)} in all, exit ${w.exitCode}`);
    const c = r.journalCatchUp;
    if (c) notes.push(`journal had ${c.seen}/${c.expected} changed files ${fmtSecs(c.seconds)} after the change${c.ok ? '' : ' (GAVE UP WAITING)'}`);
    for (const [k, s] of everyRun(r)) if (s.exitCode !== 0) notes.push(`${k} exit ${s.exitCode}${s.ok ? '' : ' (failed)'}`);
    if (r.failed) notes.push(`FAILED at ${r.failed}`);
    out.push(`${n}: ${notes.join('; ')}`);
  }
  const bad = journalNotOptimized(result);
  if (bad.length > 0) out.push(`!!! WARNING: azbk-journal re-runs NOT optimized, so that column does not measure the change journal: ${bad.join('; ')}`);
  if (!result.gnuTime) out.push('GNU time missing (apt-get install -y time): no peak RSS or CPU time.');
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((err) => {
  revertChange();
  // Ctrl-C: the signal handler ends the run (exit 130) and removes the work folder
  if (STATE.interrupted) return;
  process.stderr.write(`bench: ${err.stack ?? err}\n(the work folder, with the logs of every step, is kept; remove it by hand)\n`);
  process.exit(1);
});
