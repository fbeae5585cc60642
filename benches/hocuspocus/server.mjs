#!/usr/bin/env node
// Hocuspocus with its default configuration (no extensions, so no persistence:
// documents live in memory and are unloaded when their last client leaves),
// listening on 127.0.0.1:<--port>. Prints `listening <port>` once ready and
// exits cleanly (status 0) on SIGTERM / SIGINT.
//
// Only process plumbing differs from `new Server()`: the address, the port,
// `quiet` (no start banner, so stdout carries just the `listening` line) and
// our own signal handler (the built-in one can wait forever for documents to
// unload; ours gives up after a few seconds).
import { parseArgs } from "node:util";
import { Server } from "@hocuspocus/server";

const { values } = parseArgs({
	options: {
		port: { type: "string", default: "1234" },
		host: { type: "string", default: "127.0.0.1" },
		help: { type: "boolean", short: "h", default: false },
	},
});

if (values.help) {
	console.log(`usage: node server.mjs [--port 1234] [--host 127.0.0.1]

Starts @hocuspocus/server with its default configuration (no extensions,
in-memory documents). Prints "listening <port>" when ready; SIGTERM stops it.`);
	process.exit(0);
}

const port = Number.parseInt(values.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
	console.error(`invalid --port ${values.port}`);
	process.exit(2);
}

const server = new Server({
	port,
	address: values.host,
	quiet: true,
	stopOnSignals: false,
});

let stopping = false;
async function stop(signal) {
	if (stopping) return;
	stopping = true;
	const force = setTimeout(() => {
		console.error(`${signal}: documents did not unload within 5 s; exiting anyway`);
		process.exit(0);
	}, 5000);
	force.unref();
	try {
		await server.destroy();
	} catch (error) {
		console.error("error while stopping:", error);
	}
	process.exit(0);
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));

await server.listen();
console.log(`listening ${server.address.port}`);
