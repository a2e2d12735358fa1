/**
 * A TCP proxy in front of a test server, for network failures on demand: `cut()` destroys the open
 * connections (as a dropped network would) and keeps listening; `close()` also stops listening, so
 * reconnections are refused.
 */

import net from 'node:net';

/** A running proxy. */
export interface TcpProxy {
  /** `http://127.0.0.1:<port>` */
  url: string;
  cut(): void;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 port 0 to the host and port of `target` (a URL). */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const proxy = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const address = proxy.address() as net.AddressInfo;
  const cut = (): void => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut,
    async close() {
      const closed = new Promise<void>((resolve) => proxy.close(() => resolve()));
      cut();
      await closed;
    },
  };
}
