// Preload (`node -r ./loopback.cjs`) that keeps a Node tool on this machine:
// - every server binds 127.0.0.1, whatever host it asked for (the Agents Playground
//   listens on every interface by default);
// - outbound TCP connections to anything but loopback are refused before any DNS
//   lookup, so a tool cannot reach the network even if its telemetry is left on.
"use strict";

const net = require("node:net");

const LOOPBACK = "127.0.0.1";
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

function loopbackListenArgs(args) {
  const first = args[0];
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    // listen(options[, callback]); a pipe path or an inherited handle is local already.
    if (first.path != null || first.handle != null || first.fd != null) {
      return args;
    }
    return [{ ...first, host: LOOPBACK }, ...args.slice(1)];
  }
  if (typeof first === "string" && !/^\d+$/.test(first)) {
    return args; // listen(path): a Unix socket
  }
  // listen([port][, host][, backlog][, callback]): whatever host was given (none,
  // 0.0.0.0, ::, a public address) becomes loopback.
  const portGiven = first !== undefined && typeof first !== "function";
  const rest = args.slice(portGiven ? 1 : 0);
  if (typeof rest[0] === "string") {
    rest.shift();
  }
  return [portGiven ? first : 0, LOOPBACK, ...rest];
}

const originalListen = net.Server.prototype.listen;
net.Server.prototype.listen = function listenOnLoopback(...args) {
  return originalListen.apply(this, loopbackListenArgs(args));
};

function targetHost(args) {
  const first = args[0];
  if (Array.isArray(first)) {
    return targetHost(first); // net's internal normalized form
  }
  if (first !== null && typeof first === "object") {
    if (typeof first.path === "string" && first.host === undefined) {
      return LOOPBACK; // Unix socket (http requests carry the URL path in `path`)
    }
    return first.host === undefined ? "localhost" : String(first.host);
  }
  if (typeof first === "string" && !/^\d+$/.test(first)) {
    return LOOPBACK; // connect(path)
  }
  return typeof args[1] === "string" ? args[1] : "localhost";
}

function isLoopback(host) {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const originalConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function connectToLoopbackOnly(...args) {
  const host = targetHost(args);
  if (!isLoopback(host)) {
    const error = new Error(`loopback.cjs: refused a connection to ${host} (loopback only)`);
    error.code = "ECONNREFUSED";
    process.nextTick(() => this.destroy(error));
    return this;
  }
  return originalConnect.apply(this, args);
};
