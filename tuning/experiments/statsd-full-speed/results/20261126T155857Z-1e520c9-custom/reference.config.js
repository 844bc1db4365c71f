/* etsy statsd 0.9.0 under test; tuning/experiments/run fills in the @...@ placeholders. Its
   graphite backend sends every flush to a TCP sink on 28126 standing in for carbon,
   from which the runner reads etsy's own statsd.metrics_received back. Defaults otherwise: the
   kernel's default UDP receive buffer. */
{ port: 28125, address: "127.0.0.1", mgmt_port: 28127, mgmt_address: "127.0.0.1",
  flushInterval: 2000, backends: ["./backends/graphite"],
  graphiteHost: "127.0.0.1", graphitePort: 28126, graphite: { legacyNamespace: true } }
