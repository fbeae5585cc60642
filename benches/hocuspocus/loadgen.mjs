#!/usr/bin/env node
// Load generator for Hocuspocus (Yjs over WebSocket), equivalent to our own
// load generator: N documents x M editors, each editor its own WebSocket
// connection typing K characters per second at the end of its own line. The
// first editor of each document is a full Yjs client (Y.Doc and
// HocuspocusProvider) that also checks the text at the end; the others speak
// the Hocuspocus protocol directly (--clients light, the default), so that the
// generator's CPU goes to the load and not to applying every update ten times
// over. See --help and README.md.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import { HocuspocusProvider } from "@hocuspocus/provider";
import WebSocket from "ws";
import * as Y from "yjs";

const HELP = `usage: node loadgen.mjs [options]

Drives a Hocuspocus server with simulated editors: --documents documents
(named <prefix>-<i>), each with --editors editors; every editor has its own
WebSocket connection and types one character per keystroke, --rate
keystrokes per second, at the end of its own line ("editor-<j>").
Keystrokes of different editors are spread evenly (random phase); each
keystroke is its own Yjs update. The characters come from an editing trace:
all inserted strings concatenated, each editor starting at a different
offset.

The first editor of a document is always a full Yjs client (its own Y.Doc
and @hocuspocus/provider): it writes the editors' lines, types like the
others, and its replica is checked at the end. With --clients light (the
default) the other editors speak the Hocuspocus protocol themselves: each
keystroke is the exact Yjs update a Y.Doc would send (one string item after
the editor's previous character), and incoming updates are decoded only as
far as their item ids, without a Y.Doc. With --clients provider every editor
is a full Yjs client, as a browser tab would be; the generator then spends
most of its CPU applying updates and saturates long before the server.

options:
  --url URL               server (default ws://127.0.0.1:1234)
  --documents N           documents (default 10; 1 with --ramp)
  --editors M             editors per document (default 10)
  --rate K                keystrokes per second per editor (default 2)
  --seconds S             measured duration (default 30)
  --warmup S              typing before the measured window (default 5)
  --server-pid PID        server process: CPU time (utime+stime) and VmRSS are
                          read from /proc/PID before/after the window
  --trace PATH            gzip JSON editing trace
                          (default ../traces/data/automerge-paper.json.gz, beside this script)
  --json                  also print the result as one JSON line
  --ramp                  ramp mode: add documents step by step until the knee
  --step-documents D      ramp: documents added per step (default 5)
  --step-seconds S        ramp: measured seconds per step (default 10)
  --step-warmup S         ramp: seconds between adding a step's documents and
                          measuring it (default 2)
  --knee-ms MS            ramp: stop when a step's p95 exceeds this (default 2000)
  --target-ms MS          ramp: "sustained" = largest step with p95 below (default 50)
  --max-editors E         ramp: stop at this many editors (default 5000)
  --quiesce-seconds S     after typing stops, wait up to S for all replicas to
                          converge before counting lost edits (default 30)
  --connect-timeout S     per-editor connect+sync timeout (default 30)
  --connect-concurrency C editors connecting at the same time (default 50)
  --doc-prefix P          document name prefix (default "bench")
  --clients light|provider
                          editors after the first: raw protocol clients
                          (light, default) or full Yjs providers
  --no-awareness          create providers without awareness (default: the
                          provider's default Awareness, as a browser would)
  -h, --help              this text

Measured in the window: changes in per second (keystrokes sent), messages out
per second (WebSocket messages received by all generator clients, i.e. what
the server sent), keystroke-to-other-editor latency p50/p95/p99/max (from the
keystroke until each other editor of the document integrates that exact Yjs
item, identified by (clientID, clock)), server CPU seconds per 1000 changes
and RSS, conflicts (always 0 for a CRDT), errors (connection failures,
disconnects, exceptions, diverging replicas) and lost edits (keystrokes
missing from any replica after quiescence). Generator CPU and event-loop
delay are reported too: when the generator is saturated the latencies are
its own, not the server's.

Exit status: 0 when errors = 0 and lost = 0 (ramp: lost = 0 and replicas
converged), 1 otherwise, 2 on bad usage.`;

// ---------------------------------------------------------------- options

let opts;
try {
	opts = parseArgs({
		options: {
			url: { type: "string", default: "ws://127.0.0.1:1234" },
			documents: { type: "string" },
			editors: { type: "string", default: "10" },
			rate: { type: "string", default: "2" },
			seconds: { type: "string", default: "30" },
			warmup: { type: "string", default: "5" },
			"server-pid": { type: "string" },
			trace: {
				type: "string",
				default: fileURLToPath(new URL("../traces/data/automerge-paper.json.gz", import.meta.url)),
			},
			json: { type: "boolean", default: false },
			ramp: { type: "boolean", default: false },
			"step-documents": { type: "string", default: "5" },
			"step-seconds": { type: "string", default: "10" },
			"step-warmup": { type: "string", default: "2" },
			"knee-ms": { type: "string", default: "2000" },
			"target-ms": { type: "string", default: "50" },
			"max-editors": { type: "string", default: "5000" },
			"quiesce-seconds": { type: "string", default: "30" },
			"connect-timeout": { type: "string", default: "30" },
			"connect-concurrency": { type: "string", default: "50" },
			"doc-prefix": { type: "string", default: "bench" },
			"no-awareness": { type: "boolean", default: false },
			clients: { type: "string", default: "light" },
			help: { type: "boolean", short: "h", default: false },
		},
		strict: true,
		allowPositionals: false,
	}).values;
} catch (error) {
	console.error(`${error.message}\n\n${HELP}`);
	process.exit(2);
}
if (opts.help) {
	console.log(HELP);
	process.exit(0);
}

function num(name, { min = 0, integer = false } = {}) {
	const raw = opts[name];
	const v = Number(raw);
	if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
		console.error(`invalid --${name} ${raw}`);
		process.exit(2);
	}
	return v;
}

const RAMP = opts.ramp;
if (opts.documents === undefined) opts.documents = RAMP ? "1" : "10";
const cfg = {
	url: opts.url,
	documents: num("documents", { min: 1, integer: true }),
	editors: num("editors", { min: 1, integer: true }),
	rate: num("rate", { min: 0.001 }),
	seconds: num("seconds", { min: 0.1 }),
	warmup: num("warmup"),
	serverPid: opts["server-pid"] === undefined ? null : num("server-pid", { min: 1, integer: true }),
	trace: opts.trace,
	json: opts.json,
	stepDocuments: num("step-documents", { min: 1, integer: true }),
	stepSeconds: num("step-seconds", { min: 0.1 }),
	stepWarmup: num("step-warmup"),
	kneeMs: num("knee-ms"),
	targetMs: num("target-ms"),
	maxEditors: num("max-editors", { min: 1, integer: true }),
	quiesceSeconds: num("quiesce-seconds"),
	connectTimeout: num("connect-timeout", { min: 0.1 }),
	connectConcurrency: num("connect-concurrency", { min: 1, integer: true }),
	prefix: opts["doc-prefix"],
	awareness: !opts["no-awareness"],
	light: opts.clients === "light",
};
if (opts.clients !== "light" && opts.clients !== "provider") {
	console.error(`invalid --clients ${opts.clients} (light or provider)`);
	process.exit(2);
}
const PERIOD_MS = 1000 / cfg.rate;

const log = (...a) => console.error(...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- errors

const errorCounts = { ws_error: 0, disconnect: 0, exception: 0, sync_timeout: 0, auth_failed: 0, gap: 0, divergence: 0, mismatch: 0 };
let errorsLogged = 0;
function countError(kind, detail) {
	errorCounts[kind] += 1;
	if (errorsLogged < 10) {
		errorsLogged += 1;
		log(`error (${kind}): ${detail instanceof Error ? detail.stack || detail.message : detail ?? ""}`);
	}
}
const totalErrors = () => Object.values(errorCounts).reduce((a, b) => a + b, 0);
process.on("uncaughtException", (e) => countError("exception", e));
process.on("unhandledRejection", (e) => countError("exception", e));

// ---------------------------------------------------------------- server /proc

let clkTck = 100;
try {
	clkTck = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
} catch {}

// `cd dir && node server.mjs &` makes $! the pid of a subshell, not of
// node: follow a wrapper (shell, timeout, npm) down to its only child.
const WRAPPERS = new Set(["bash", "sh", "dash", "zsh", "timeout", "npm", "npm exec", "env", "setsid", "taskset", "nice"]);
function resolveServerPid(pid) {
	for (let depth = 0; depth < 5; depth++) {
		let comm;
		try {
			comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
		} catch (e) {
			console.error(`--server-pid ${pid}: no such process (${e.message})`);
			process.exit(2);
		}
		if (!WRAPPERS.has(comm)) return pid;
		let children = [];
		try {
			children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
		} catch {}
		if (children.length !== 1) {
			log(`warning: --server-pid ${pid} is "${comm}", not the server itself; CPU and RSS will be its own`);
			return pid;
		}
		log(`note: --server-pid ${pid} is "${comm}"; measuring its child ${children[0]} instead`);
		pid = Number(children[0]);
	}
	return pid;
}
if (cfg.serverPid !== null) cfg.serverPid = resolveServerPid(cfg.serverPid);

function readServer() {
	if (cfg.serverPid === null) return null;
	try {
		const stat = readFileSync(`/proc/${cfg.serverPid}/stat`, "utf8");
		const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
		// f[0] is field 3 (state); utime = field 14, stime = field 15
		const cpu = (Number(f[11]) + Number(f[12])) / clkTck;
		const status = readFileSync(`/proc/${cfg.serverPid}/status`, "utf8");
		const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
		return { cpu, rssMiB: m ? Number(m[1]) / 1024 : null, t: performance.now() };
	} catch (e) {
		countError("exception", `cannot read /proc/${cfg.serverPid}: ${e.message}`);
		return null;
	}
}

// ---------------------------------------------------------------- trace text

function loadTraceChars(path) {
	const data = JSON.parse(gunzipSync(readFileSync(path)).toString("utf8"));
	if (!Array.isArray(data.txns)) throw new Error(`${path}: no txns array`);
	const parts = [];
	for (const txn of data.txns) for (const p of txn.patches) if (p[2]) parts.push(p[2]);
	const chars = Array.from(parts.join("")); // code points: a keystroke never splits a surrogate pair
	if (chars.length === 0) throw new Error(`${path}: no inserted text`);
	return chars;
}
const TRACE = loadTraceChars(cfg.trace);

// ---------------------------------------------------------------- measurement buckets

// A bucket collects what happens during one measured window (fixed mode) or
// one ramp step. Keystrokes made while `current` is null (warm-up, setup)
// are still tracked for lost-edit accounting but not measured.
function newBucket() {
	return {
		changes: 0,
		samples: [], // latency ms per (keystroke, other editor)
		msgs: 0,
		msgTypes: { sync_update: 0, sync_step1: 0, sync_step2: 0, sync_status: 0, awareness: 0, other: 0 },
		lagMax: 0,
		lagSum: 0,
		start: 0,
		end: 0,
	};
}
let current = null;

// ---------------------------------------------------------------- WebSocket with counting

let shuttingDown = false;
const MSG_NAMES = { 1: "awareness", 8: "sync_status" };
function classify(buf) {
	// Hocuspocus framing: varString(documentName) varUint(type) ...; for
	// type 0 (sync) a y-protocols varUint sub-type follows (0 step1, 1 step2, 2 update).
	let i = 0;
	const varUint = () => {
		let v = 0;
		let mult = 1;
		for (;;) {
			const b = buf[i++];
			v += (b & 0x7f) * mult;
			if (b < 0x80 || i >= buf.length) return v;
			mult *= 128;
		}
	};
	const len = varUint();
	i += len;
	const type = varUint();
	if (type === 0) {
		const sub = varUint();
		return sub === 2 ? "sync_update" : sub === 1 ? "sync_step2" : sub === 0 ? "sync_step1" : "other";
	}
	return MSG_NAMES[type] ?? "other";
}

class CountingWebSocket extends WebSocket {
	constructor(url, protocols) {
		super(url, protocols);
		this.on("message", (data) => {
			const b = current;
			if (b === null) return;
			b.msgs += 1;
			const u8 = data instanceof ArrayBuffer ? new Uint8Array(data) : Array.isArray(data) ? Buffer.concat(data) : data;
			b.msgTypes[classify(u8)] += 1;
		});
		this.on("error", (e) => {
			if (!shuttingDown) countError("ws_error", e.message);
		});
		this.on("close", (code, reason) => {
			if (!shuttingDown) countError("disconnect", `code ${code} ${reason}`);
		});
	}
}

// ---------------------------------------------------------------- editors and documents

const usedClientIds = new Set();
function uniqueClientId() {
	for (;;) {
		const id = Math.floor(Math.random() * 0xffffffff);
		if (!usedClientIds.has(id)) {
			usedClientIds.add(id);
			return id;
		}
	}
}

const documents = [];
const allEditors = [];
let globalEditorIndex = 0;
const setupText = (m) => Array.from({ length: m }, (_, j) => `editor-${j}\n`).join("");

// The first editor of a document is always a full Yjs client; with --clients
// light the others are light editors (no Y.Doc).
function makeEditor(doc, j) {
	const clientId = uniqueClientId();
	const g = globalEditorIndex++;
	const full = j === 0 || !cfg.light;
	const ydoc = full ? new Y.Doc() : null;
	if (full) ydoc.clientID = clientId;
	const e = {
		doc,
		j,
		clientId,
		ydoc,
		ytext: full ? ydoc.getText("text") : null,
		provider: null,
		rel: null,
		// light editors only
		ws: null,
		clock: 0,
		origin: null,
		rightOrigin: null,
		unacked: 0,
		synced: false,
		onSynced: null,
		received: new Map(), // client -> next expected clock
		missed: new Set(), // "client:clock" of items skipped over (gaps)
		// golden-ratio spread of start offsets over the trace text
		traceOffset: Math.floor(((g * 0.6180339887498949) % 1) * TRACE.length),
		typedCount: 0,
		typed: "",
		sentClocks: [],
		pending: new Map(), // clock -> { t, remaining, bucket }
		nextDue: 0,
		heapIndex: -1,
	};
	doc.byClient.set(clientId, e);
	if (!full) return e;
	ydoc.on("afterTransaction", (tr) => {
		if (tr.local) return;
		const now = { t: -1 };
		for (const [client, after] of tr.afterState) {
			const before = tr.beforeState.get(client) ?? 0;
			if (after <= before || client === ydoc.clientID) continue;
			const src = doc.byClient.get(client);
			if (src !== undefined) delivered(src, before, after, now);
		}
	});
	return e;
}

// One more editor has the items [from, to) of editor `src`: their latency
// samples, taken at one `now.t` per message.
function delivered(src, from, to, now) {
	for (let c = from; c < to; c++) {
		const rec = src.pending.get(c);
		if (rec === undefined) continue;
		if (now.t < 0) now.t = performance.now();
		if (rec.bucket !== null) rec.bucket.samples.push(now.t - rec.t);
		rec.remaining -= 1;
		if (rec.remaining === 0) src.pending.delete(c);
	}
}

function connectEditor(e) {
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => {
			countError("sync_timeout", `${e.doc.name} editor ${e.j} not synced after ${cfg.connectTimeout} s`);
			reject(new Error(`sync timeout ${e.doc.name}/${e.j}`));
		}, cfg.connectTimeout * 1000);
		e.provider = new HocuspocusProvider({
			url: cfg.url,
			name: e.doc.name,
			document: e.ydoc,
			WebSocketPolyfill: CountingWebSocket,
			...(cfg.awareness ? {} : { awareness: null }),
			onSynced: () => {
				clearTimeout(timer);
				resolve();
			},
			onAuthenticationFailed: ({ reason }) => countError("auth_failed", reason),
		});
	});
}

// ---------------------------------------------------------------- light editors

// A light editor speaks the Hocuspocus protocol (lib0 encoding, y-protocols
// sync messages) over its own WebSocket, without a Y.Doc: it sends each
// keystroke as the Yjs update (v1 encoding) a Y.Doc would produce for it, and
// decodes incoming updates only to the ids of their items. What it has
// received is tracked per sending client as the next expected clock: the
// server applies and forwards one client's items in clock order.

const utf8 = new TextEncoder();
function pushVarUint(out, v) {
	while (v > 0x7f) {
		out.push((v % 128) | 0x80);
		v = Math.floor(v / 128);
	}
	out.push(v);
}
function pushVarBytes(out, bytes) {
	pushVarUint(out, bytes.length);
	for (const b of bytes) out.push(b);
}
const MSG_SYNC = 0;
const MSG_AUTH = 2;
const MSG_SYNC_REPLY = 4;
const MSG_SYNC_STATUS = 8;
const SYNC_STEP1 = 0;
const SYNC_STEP2 = 1;
const SYNC_UPDATE = 2;
const YJS_STRING = 4;
const YJS_DELETED = 1;

function lightMessage(doc, ...parts) {
	const out = [...doc.nameBytes];
	for (const p of parts) pushVarUint(out, p);
	return out;
}

// The keystroke `ch` as a Yjs update: one string item (client, clock) whose
// left origin is the editor's previous character and whose right origin is
// its line's newline.
function lightKeystroke(e, ch) {
	const update = [1, 1];
	pushVarUint(update, e.clientId);
	pushVarUint(update, e.clock);
	update.push(0x80 | 0x40 | YJS_STRING);
	pushVarUint(update, e.origin[0]);
	pushVarUint(update, e.origin[1]);
	pushVarUint(update, e.rightOrigin[0]);
	pushVarUint(update, e.rightOrigin[1]);
	pushVarBytes(update, utf8.encode(ch));
	update.push(0); // empty delete set
	const msg = lightMessage(e.doc, MSG_SYNC, SYNC_UPDATE);
	pushVarBytes(msg, update);
	return Uint8Array.from(msg);
}

class Reader {
	constructor(buf) {
		this.buf = buf;
		this.i = 0;
	}
	varUint() {
		let v = 0;
		let mult = 1;
		for (;;) {
			if (this.i >= this.buf.length) throw new Error("message ends inside a number");
			const b = this.buf[this.i++];
			v += (b & 0x7f) * mult;
			if (b < 0x80) return v;
			mult *= 128;
		}
	}
	byte() {
		if (this.i >= this.buf.length) throw new Error("message ends early");
		return this.buf[this.i++];
	}
	skip(n) {
		this.i += n;
		if (this.i > this.buf.length) throw new Error("message ends early");
	}
	string() {
		const n = this.varUint();
		const start = this.i;
		this.skip(n);
		return this.buf.toString("utf8", start, this.i);
	}
}

// Calls `item(client, clock, length)` for every struct of a v1 update; stops
// (returning false) at content kinds keystrokes never produce.
function forEachStruct(r, item) {
	const clients = r.varUint();
	for (let k = 0; k < clients; k++) {
		const structs = r.varUint();
		const client = r.varUint();
		let clock = r.varUint();
		for (let s = 0; s < structs; s++) {
			const info = r.byte(); // a plain byte, not a varUint
			const ref = info & 0x1f;
			let length;
			if (ref === 0 || ref === 10) {
				length = r.varUint(); // GC or skip
			} else {
				if (info & 0x80) (r.varUint(), r.varUint());
				if (info & 0x40) (r.varUint(), r.varUint());
				if ((info & 0xc0) === 0) {
					if (r.varUint() === 1) r.string();
					else (r.varUint(), r.varUint());
					if (info & 0x20) r.string();
				}
				if (ref === YJS_STRING) length = r.string().length;
				else if (ref === YJS_DELETED) length = r.varUint();
				else return false;
			}
			item(client, clock, length);
			clock += length;
		}
	}
	return true;
}

function onLightMessage(e, data) {
	const r = new Reader(data);
	r.skip(r.varUint()); // document name
	const type = r.varUint();
	if (type === MSG_SYNC_STATUS) {
		e.unacked -= 1;
		return;
	}
	if (type !== MSG_SYNC && type !== MSG_SYNC_REPLY) return;
	const sub = r.varUint();
	if (sub !== SYNC_UPDATE && sub !== SYNC_STEP2) return;
	r.varUint(); // the update's length
	const now = { t: -1 };
	forEachStruct(r, (client, clock, length) => {
		if (client === e.clientId) return; // Hocuspocus echoes updates to their sender
		const src = e.doc.byClient.get(client);
		if (src === undefined) return;
		const expected = e.received.get(client) ?? 0;
		if (clock > expected) {
			countError("gap", `${e.doc.name}/${e.j}: client ${client} clock ${clock}, expected ${expected}`);
			for (let c = expected; c < clock; c++) e.missed.add(`${client}:${c}`);
		}
		if (clock + length > expected) e.received.set(client, clock + length);
		delivered(src, Math.max(clock, expected), clock + length, now);
	});
	if (sub === SYNC_STEP2 && !e.synced) {
		e.synced = true;
		e.onSynced();
	}
}

// Connects a light editor; `first` is the document's full client, whose
// setup transaction wrote the editors' lines starting at `setupClock`.
function connectLight(e, setup, setupClock) {
	const first = e.doc.editors[0];
	const label = `editor-${e.j}`;
	const labelEnd = setup.indexOf(`${label}\n`) + label.length; // index of the newline
	e.origin = [first.clientId, setupClock + labelEnd - 1];
	e.rightOrigin = [first.clientId, setupClock + labelEnd];
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => {
			countError("sync_timeout", `${e.doc.name} editor ${e.j} not synced after ${cfg.connectTimeout} s`);
			reject(new Error(`sync timeout ${e.doc.name}/${e.j}`));
		}, cfg.connectTimeout * 1000);
		e.onSynced = () => {
			clearTimeout(timer);
			resolve();
		};
		const ws = new CountingWebSocket(cfg.url);
		e.ws = ws;
		ws.on("open", () => {
			// the token is not checked with the default configuration
			const auth = lightMessage(e.doc, MSG_AUTH, 0);
			pushVarBytes(auth, utf8.encode(""));
			ws.send(Uint8Array.from(auth));
			const step1 = lightMessage(e.doc, MSG_SYNC, SYNC_STEP1);
			pushVarBytes(step1, [0]); // empty state vector
			ws.send(Uint8Array.from(step1));
		});
		ws.on("message", (data) => {
			try {
				onLightMessage(e, data);
			} catch (err) {
				countError("exception", err);
			}
		});
	});
}

// at most cfg.connectConcurrency editors connecting at once
let connectSlots = cfg.connectConcurrency;
const connectWaiters = [];
async function withConnectSlot(fn) {
	if (connectSlots === 0) await new Promise((r) => connectWaiters.push(r));
	else connectSlots -= 1;
	try {
		return await fn();
	} finally {
		const next = connectWaiters.shift();
		if (next) next();
		else connectSlots += 1;
	}
}

async function waitUntil(pred, timeoutMs, what) {
	const end = performance.now() + timeoutMs;
	while (!pred()) {
		if (performance.now() > end) throw new Error(`timeout waiting for ${what}`);
		await sleep(10);
	}
}

async function openDocument(i) {
	const name = `${cfg.prefix}-${i}`;
	const nameBytes = [];
	pushVarBytes(nameBytes, utf8.encode(name));
	const doc = { name, nameBytes, editors: [], byClient: new Map() };
	for (let j = 0; j < cfg.editors; j++) doc.editors.push(makeEditor(doc, j));
	const [first, ...others] = doc.editors;
	await withConnectSlot(() => connectEditor(first));
	const setup = setupText(cfg.editors);
	if (first.ytext.length > 0) {
		log(`note: ${doc.name} was not empty (${first.ytext.length} chars); clearing it`);
		first.ydoc.transact(() => first.ytext.delete(0, first.ytext.length));
	}
	const setupClock = Y.getState(first.ydoc.store, first.clientId);
	first.ydoc.transact(() => first.ytext.insert(0, setup));
	// the server acknowledges every update (SyncStatus); wait until it has the lines
	await waitUntil(() => first.provider.unsyncedChanges === 0, cfg.connectTimeout * 1000, `${doc.name} setup ack`);
	await Promise.all(
		others.map((e) => withConnectSlot(() => (e.ydoc === null ? connectLight(e, setup, setupClock) : connectEditor(e)))),
	);
	for (const e of doc.editors) {
		if (e.ydoc === null) continue;
		await waitUntil(() => e.ytext.toString() === setup, cfg.connectTimeout * 1000, `${doc.name} lines at editor ${e.j}`);
		const label = `editor-${e.j}`;
		const lineStart = setup.indexOf(`${label}\n`);
		// associated with the last character of the label (assoc -1): typed
		// characters go right after it, and then right after the previous one
		e.rel = Y.createRelativePositionFromTypeIndex(e.ytext, lineStart + label.length, -1);
	}
	documents.push(doc);
	allEditors.push(...doc.editors);
	return doc;
}

async function openDocuments(from, count) {
	await Promise.all(Array.from({ length: count }, (_, k) => openDocument(from + k)));
}

// ---------------------------------------------------------------- typing scheduler (min-heap on nextDue)

const heap = [];
function heapSwap(a, b) {
	const t = heap[a];
	heap[a] = heap[b];
	heap[b] = t;
	heap[a].heapIndex = a;
	heap[b].heapIndex = b;
}
function heapPush(e) {
	e.heapIndex = heap.length;
	heap.push(e);
	let i = e.heapIndex;
	while (i > 0) {
		const p = (i - 1) >> 1;
		if (heap[p].nextDue <= heap[i].nextDue) break;
		heapSwap(i, p);
		i = p;
	}
}
function heapPop() {
	const top = heap[0];
	const last = heap.pop();
	if (heap.length > 0) {
		heap[0] = last;
		last.heapIndex = 0;
		let i = 0;
		for (;;) {
			const l = 2 * i + 1;
			const r = l + 1;
			let m = i;
			if (l < heap.length && heap[l].nextDue < heap[m].nextDue) m = l;
			if (r < heap.length && heap[r].nextDue < heap[m].nextDue) m = r;
			if (m === i) break;
			heapSwap(i, m);
			i = m;
		}
	}
	top.heapIndex = -1;
	return top;
}

let typing = false;
let tickTimer = null;
let totalKeystrokes = 0;

function keystroke(e, due) {
	const ch = TRACE[(e.traceOffset + e.typedCount) % TRACE.length];
	if (e.ydoc === null) {
		const clock = e.clock;
		const msg = lightKeystroke(e, ch);
		const t = performance.now();
		e.ws.send(msg);
		e.unacked += 1;
		e.clock += ch.length;
		e.origin = [e.clientId, e.clock - 1];
		typed(e, ch, clock, t, due);
		return;
	}
	const abs = Y.createAbsolutePositionFromRelativePosition(e.rel, e.ydoc);
	if (abs === null) {
		countError("exception", `${e.doc.name}/${e.j}: own position vanished`);
		return;
	}
	const clientId = e.ydoc.clientID;
	const clock = Y.getState(e.ydoc.store, clientId);
	const t = performance.now();
	e.ydoc.transact(() => e.ytext.insert(abs.index, ch));
	// the inserted item is (clientId, clock); the next keystroke goes right after it
	e.rel = new Y.RelativePosition(null, "text", Y.createID(clientId, clock + ch.length - 1), -1);
	typed(e, ch, clock, t, due);
}

// Bookkeeping for the keystroke `ch`, item (e.clientId, clock), sent at `t`.
function typed(e, ch, clock, t, due) {
	e.typedCount += 1;
	e.typed += ch;
	e.sentClocks.push(clock);
	totalKeystrokes += 1;
	const b = current;
	if (e.doc.editors.length > 1) e.pending.set(clock, { t, remaining: e.doc.editors.length - 1, bucket: b });
	if (b !== null) {
		b.changes += 1;
		const lag = t - due;
		b.lagSum += lag;
		if (lag > b.lagMax) b.lagMax = lag;
	}
}

function tick() {
	tickTimer = null;
	if (!typing) return;
	const now = performance.now();
	while (heap.length > 0 && heap[0].nextDue <= now) {
		const e = heapPop();
		try {
			keystroke(e, e.nextDue);
		} catch (err) {
			countError("exception", err);
		}
		e.nextDue += PERIOD_MS;
		heapPush(e);
	}
	schedule();
}
function schedule() {
	if (!typing || tickTimer !== null || heap.length === 0) return;
	tickTimer = setTimeout(tick, Math.max(0, heap[0].nextDue - performance.now()));
}
function startTyping(editors) {
	const now = performance.now();
	for (const e of editors) {
		e.nextDue = now + Math.random() * PERIOD_MS; // random phase
		heapPush(e);
	}
	typing = true;
	if (tickTimer !== null) {
		clearTimeout(tickTimer);
		tickTimer = null;
	}
	schedule();
}
function stopTyping() {
	typing = false;
	if (tickTimer !== null) clearTimeout(tickTimer);
	tickTimer = null;
}

// ---------------------------------------------------------------- windows

// sampled every 1 ms; the histogram includes that 1 ms interval, which we
// subtract so that an idle loop reports ~0
const LOOP_RESOLUTION_MS = 1;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loopDelay.enable();

function beginWindow() {
	const b = newBucket();
	b.server0 = readServer();
	b.cpu0 = process.cpuUsage();
	b.start = performance.now();
	loopDelay.reset();
	current = b;
	return b;
}
function endWindow(b) {
	b.end = performance.now();
	b.server1 = readServer();
	b.cpu1 = process.cpuUsage(b.cpu0);
	// no sample at all means the loop was blocked for the whole window
	const blocked = loopDelay.count === 0;
	b.loopDelayP99 = blocked ? (b.end - b.start) : Math.max(0, loopDelay.percentile(99) / 1e6 - LOOP_RESOLUTION_MS);
	b.loopDelayMax = blocked ? (b.end - b.start) : Math.max(0, loopDelay.max / 1e6 - LOOP_RESOLUTION_MS);
	if (current === b) current = null;
}

function percentile(sorted, q) {
	if (sorted.length === 0) return null;
	return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

// Summarise a bucket. With `censorAt` set, observations still outstanding
// are included at their current age (a lower bound of their latency).
function summarise(b, censorAt = null) {
	const samples = Float64Array.from(b.samples);
	let outstanding = 0;
	let extra = [];
	if (censorAt !== null) {
		for (const e of allEditors)
			for (const rec of e.pending.values())
				if (rec.bucket === b) {
					outstanding += rec.remaining;
					for (let k = 0; k < rec.remaining; k++) extra.push(censorAt - rec.t);
				}
	}
	const all = extra.length ? Float64Array.from([...samples, ...extra]) : samples;
	all.sort();
	extra = null;
	const secs = (b.end - b.start) / 1000;
	const s0 = b.server0;
	const s1 = b.server1;
	const serverCpu = s0 && s1 ? s1.cpu - s0.cpu : null;
	return {
		seconds: secs,
		changes: b.changes,
		changes_in_per_sec: b.changes / secs,
		messages_out: b.msgs,
		messages_out_per_sec: b.msgs / secs,
		messages_out_by_type: { ...b.msgTypes },
		latency_samples: all.length,
		outstanding_at_end: outstanding,
		p50_ms: percentile(all, 0.5),
		p95_ms: percentile(all, 0.95),
		p99_ms: percentile(all, 0.99),
		max_ms: all.length ? all[all.length - 1] : null,
		server_cpu_s: serverCpu,
		server_cpu_pct: serverCpu === null ? null : (100 * serverCpu) / secs,
		cpu_s_per_1000_changes: serverCpu === null || b.changes === 0 ? null : (serverCpu / b.changes) * 1000,
		server_rss_mib: s1 ? s1.rssMiB : null,
		generator_cpu_pct: (100 * (b.cpu1.user + b.cpu1.system)) / 1e6 / secs,
		generator_loop_delay_p99_ms: b.loopDelayP99,
		generator_schedule_lag_mean_ms: b.changes ? b.lagSum / b.changes : 0,
		generator_schedule_lag_max_ms: b.lagMax,
	};
}

// ---------------------------------------------------------------- quiescence and verification

function sameBytes(a, b) {
	if (a.length !== b.length) return false;
	for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
	return true;
}

function docQuiet(doc) {
	const sv0 = Y.encodeStateVector(doc.editors[0].ydoc);
	for (const e of doc.editors) {
		if (e.pending.size > 0) return false;
		if (e.ydoc === null) {
			if (e.unacked !== 0) return false;
			continue;
		}
		if (e.provider.unsyncedChanges !== 0) return false;
		if (!sameBytes(Y.encodeStateVector(e.ydoc), sv0)) return false;
	}
	return true;
}

async function quiesce() {
	const t0 = performance.now();
	const deadline = t0 + cfg.quiesceSeconds * 1000;
	for (;;) {
		if (documents.every(docQuiet)) return { quiet: true, ms: performance.now() - t0 };
		if (performance.now() > deadline) return { quiet: false, ms: performance.now() - t0 };
		await sleep(50);
	}
}

// Every replica byte for byte against the others and against the text the
// editors typed; lost = keystrokes (Yjs items) missing from any replica, or
// never received by a light editor.
function verify() {
	let lost = 0;
	let divergent = 0;
	let mismatched = 0;
	for (const doc of documents) {
		const replicas = doc.editors.filter((e) => e.ydoc !== null);
		const texts = replicas.map((e) => e.ytext.toString());
		const expected = doc.editors.map((e) => `editor-${e.j}${e.typed}\n`).join("");
		for (let r = 0; r < texts.length; r++) {
			if (texts[r] !== texts[0]) {
				divergent += 1;
				countError("divergence", `${doc.name}: replica ${r} differs from replica 0`);
			}
			if (texts[r] !== expected) {
				mismatched += 1;
				countError("mismatch", `${doc.name}: replica ${r} is not the typed text (${texts[r].length} vs ${expected.length} chars)`);
			}
		}
		// per replica: which (client, clock) are present, not deleted
		const presence = replicas.map((replica) => {
			const present = new Map();
			for (let it = replica.ytext._start; it !== null; it = it.right) {
				if (it.deleted || !doc.byClient.has(it.id.client)) continue;
				let s = present.get(it.id.client);
				if (s === undefined) present.set(it.id.client, (s = new Set()));
				for (let c = 0; c < it.length; c++) s.add(it.id.clock + c);
			}
			return present;
		});
		for (const e of doc.editors) {
			const light = doc.editors.filter((r) => r.ydoc === null && r !== e);
			for (const clock of e.sentClocks) {
				const everywhere =
					presence.every((p) => p.get(e.clientId)?.has(clock)) &&
					light.every((r) => (r.received.get(e.clientId) ?? 0) > clock && !r.missed.has(`${e.clientId}:${clock}`));
				if (!everywhere) lost += 1;
			}
		}
	}
	return { lost, divergent, mismatched };
}

async function shutdown() {
	shuttingDown = true;
	stopTyping();
	for (const e of allEditors) {
		try {
			e.provider?.destroy();
			e.ws?.close();
		} catch {}
	}
	await sleep(200);
}

// ---------------------------------------------------------------- output helpers

const fmtMs = (v) => (v === null ? "n/a" : v < 10 ? v.toFixed(1) : v < 100 ? v.toFixed(1) : Math.round(v).toString());
const fmt = (v, d = 1) => (v === null || v === undefined ? "n/a" : v.toFixed(d));
const round = (v, d = 3) => (v === null || v === undefined ? null : Math.round(v * 10 ** d) / 10 ** d);

// ---------------------------------------------------------------- fixed run

async function fixedRun() {
	log(`opening ${cfg.documents} documents x ${cfg.editors} editors (${cfg.url}) ...`);
	const t0 = performance.now();
	await openDocuments(0, cfg.documents);
	log(`connected ${allEditors.length} editors in ${((performance.now() - t0) / 1000).toFixed(1)} s; warm-up ${cfg.warmup} s, then ${cfg.seconds} s measured`);
	startTyping(allEditors);
	await sleep(cfg.warmup * 1000);
	const b = beginWindow();
	await sleep(cfg.seconds * 1000);
	endWindow(b);
	stopTyping();
	const q = await quiesce();
	log(q.quiet ? `quiescent ${q.ms.toFixed(0)} ms after typing stopped` : `NOT quiescent after ${cfg.quiesceSeconds} s`);
	const v = verify();
	const s = summarise(b);
	const errors = totalErrors(); // whole run: setup, warm-up, window, quiescence, verification
	const result = {
		server: "hocuspocus",
		documents: cfg.documents,
		editors: cfg.editors,
		rate: cfg.rate,
		seconds: cfg.seconds,
		changes_in_per_sec: round(s.changes_in_per_sec, 2),
		messages_out_per_sec: round(s.messages_out_per_sec, 1),
		p50_ms: round(s.p50_ms),
		p95_ms: round(s.p95_ms),
		p99_ms: round(s.p99_ms),
		max_ms: round(s.max_ms),
		cpu_s_per_1000_changes: round(s.cpu_s_per_1000_changes, 4),
		server_rss_mib: round(s.server_rss_mib, 1),
		conflicts: 0,
		errors,
		lost: v.lost,
		// extras
		changes: s.changes,
		latency_samples: s.latency_samples,
		messages_out_by_type: s.messages_out_by_type,
		server_cpu_pct: round(s.server_cpu_pct, 1),
		generator_cpu_pct: round(s.generator_cpu_pct, 1),
		generator_loop_delay_p99_ms: round(s.generator_loop_delay_p99_ms, 2),
		generator_schedule_lag_max_ms: round(s.generator_schedule_lag_max_ms, 2),
		quiescent: q.quiet,
		quiesce_ms: Math.round(q.ms),
		error_kinds: { ...errorCounts },
		total_keystrokes: totalKeystrokes,
		awareness: cfg.awareness,
		clients: cfg.light ? "light" : "provider",
		node: process.version,
	};
	console.log(
		`hocuspocus: ${cfg.documents} docs x ${cfg.editors} editors x ${cfg.rate}/s: in ${fmt(s.changes_in_per_sec)} changes/s, out ${Math.round(s.messages_out_per_sec)} msgs/s, latency p50 ${fmtMs(s.p50_ms)} ms p95 ${fmtMs(s.p95_ms)} ms p99 ${fmtMs(s.p99_ms)} ms max ${fmtMs(s.max_ms)} ms, cpu ${fmt(s.cpu_s_per_1000_changes, 2)} s/1000 changes, server rss ${fmt(s.server_rss_mib, 0)} MiB, conflicts 0, errors ${errors}, lost ${v.lost}`,
	);
	const t = s.messages_out_by_type;
	console.log(
		`  server cpu ${fmt(s.server_cpu_pct, 0)}% | generator cpu ${fmt(s.generator_cpu_pct, 0)}% of one core, event-loop delay p99 ${fmt(s.generator_loop_delay_p99_ms)} ms, schedule lag max ${fmt(s.generator_schedule_lag_max_ms)} ms | msgs out: update ${t.sync_update}, sync-status ${t.sync_status}, awareness ${t.awareness}, step1 ${t.sync_step1}, step2 ${t.sync_step2}, other ${t.other} | ${s.latency_samples} latency samples${q.quiet ? "" : " | NOT QUIESCENT"}`,
	);
	if (cfg.json) console.log(JSON.stringify(result));
	await shutdown();
	return errors === 0 && v.lost === 0 ? 0 : 1;
}

// ---------------------------------------------------------------- ramp

async function rampRun() {
	const steps = [];
	let docsOpen = 0;
	let stopReason = null;
	const maxDocs = Math.floor(cfg.maxEditors / cfg.editors);
	if (maxDocs < 1) {
		console.error(`--max-editors ${cfg.maxEditors} is below --editors ${cfg.editors}`);
		return 2;
	}
	let add = Math.min(cfg.documents, maxDocs);
	log(`ramp: start ${add} docs x ${cfg.editors} editors x ${cfg.rate}/s, +${cfg.stepDocuments} docs every ${cfg.stepSeconds} s (+${cfg.stepWarmup} s warm-up), knee p95 > ${cfg.kneeMs} ms, max ${cfg.maxEditors} editors (${cfg.url})`);
	for (let step = 1; ; step++) {
		const before = allEditors.length;
		const errorsBefore = totalErrors(); // connect failures of this step count for it
		const tOpen = performance.now();
		try {
			await openDocuments(docsOpen, add);
		} catch (e) {
			countError("exception", e);
		}
		docsOpen += add;
		const openMs = performance.now() - tOpen;
		startTyping(allEditors.slice(before));
		await sleep(cfg.stepWarmup * 1000);
		const b = beginWindow();
		await sleep(cfg.stepSeconds * 1000);
		endWindow(b);
		const s = summarise(b, performance.now());
		const stepErrors = totalErrors() - errorsBefore;
		const row = {
			step,
			documents: documents.length,
			editors: allEditors.length,
			target_changes_per_sec: round(allEditors.length * cfg.rate, 1),
			changes_in_per_sec: round(s.changes_in_per_sec, 1),
			messages_out_per_sec: round(s.messages_out_per_sec, 1),
			p50_ms: round(s.p50_ms),
			p95_ms: round(s.p95_ms),
			p99_ms: round(s.p99_ms),
			max_ms: round(s.max_ms),
			outstanding_at_end: s.outstanding_at_end,
			errors: stepErrors,
			cpu_s_per_1000_changes: round(s.cpu_s_per_1000_changes, 4),
			server_cpu_pct: round(s.server_cpu_pct, 1),
			server_rss_mib: round(s.server_rss_mib, 1),
			generator_cpu_pct: round(s.generator_cpu_pct, 1),
			generator_loop_delay_p99_ms: round(s.generator_loop_delay_p99_ms, 2),
			generator_schedule_lag_max_ms: round(s.generator_schedule_lag_max_ms, 2),
			connect_ms: Math.round(openMs),
		};
		steps.push(row);
		console.log(
			`step ${step}: ${row.editors} editors (${row.documents} docs): in ${fmt(s.changes_in_per_sec)}/${fmt(row.target_changes_per_sec)} changes/s, out ${Math.round(s.messages_out_per_sec)} msgs/s, p50 ${fmtMs(s.p50_ms)} ms p95 ${fmtMs(s.p95_ms)} ms p99 ${fmtMs(s.p99_ms)} ms max ${fmtMs(s.max_ms)} ms${s.outstanding_at_end ? ` (${s.outstanding_at_end} undelivered, counted at their age)` : ""}, errors ${stepErrors} | server cpu ${fmt(s.server_cpu_pct, 0)}% rss ${fmt(s.server_rss_mib, 0)} MiB | generator cpu ${fmt(s.generator_cpu_pct, 0)}% loop-delay p99 ${fmt(s.generator_loop_delay_p99_ms)} ms lag max ${fmt(s.generator_schedule_lag_max_ms)} ms | connect ${(openMs / 1000).toFixed(1)} s`,
		);
		if (s.p95_ms !== null && s.p95_ms > cfg.kneeMs) {
			stopReason = "p95";
			break;
		}
		if (stepErrors > 0) {
			stopReason = "errors";
			break;
		}
		if (docsOpen >= maxDocs) {
			stopReason = "max-editors";
			break;
		}
		add = Math.min(cfg.stepDocuments, maxDocs - docsOpen);
	}
	stopTyping();
	current = null;
	const q = await quiesce();
	log(q.quiet ? `quiescent ${q.ms.toFixed(0)} ms after typing stopped` : `NOT quiescent after ${cfg.quiesceSeconds} s`);
	const v = verify();
	const last = steps[steps.length - 1];
	const kneeEditors = stopReason === "max-editors" ? null : last.editors;
	let sustained = null;
	for (const st of steps) if (st.p95_ms !== null && st.p95_ms < cfg.targetMs && st.errors === 0) sustained = st.editors;
	if (kneeEditors === null)
		console.log(`knee: not reached by ${last.editors} editors (--max-editors ${cfg.maxEditors}; last p95 ${fmtMs(last.p95_ms)} ms)`);
	else
		console.log(`knee: ${kneeEditors} editors (p95 ${fmtMs(last.p95_ms)} ms${last.errors > 0 ? `, ${last.errors} errors` : ""})`);
	console.log(`sustained at p95 < ${cfg.targetMs} ms: ${sustained ?? 0} editors`);
	console.log(`after ramp: ${totalKeystrokes} keystrokes, conflicts 0, errors ${totalErrors()}, lost ${v.lost}${q.quiet ? "" : " (NOT quiescent)"}`);
	if (cfg.json)
		console.log(
			JSON.stringify({
				server: "hocuspocus",
				mode: "ramp",
				editors_per_document: cfg.editors,
				rate: cfg.rate,
				step_seconds: cfg.stepSeconds,
				steps,
				stop_reason: stopReason,
				knee_editors: kneeEditors,
				sustained_editors: sustained ?? 0,
				target_ms: cfg.targetMs,
				knee_ms: cfg.kneeMs,
				conflicts: 0,
				errors: totalErrors(),
				error_kinds: { ...errorCounts },
				lost: v.lost,
				quiescent: q.quiet,
				awareness: cfg.awareness,
				clients: cfg.light ? "light" : "provider",
				node: process.version,
			}),
		);
	await shutdown();
	return v.lost === 0 && v.divergent === 0 && v.mismatched === 0 ? 0 : 1;
}

// ---------------------------------------------------------------- main

let code = 1;
try {
	code = RAMP ? await rampRun() : await fixedRun();
} catch (e) {
	console.error(`fatal: ${e.stack || e.message}`);
	await shutdown();
	code = 1;
}
process.exit(code);
