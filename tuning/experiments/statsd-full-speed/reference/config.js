/* etsy statsd 0.9.0 under test; tuning/experiments/run fills in the @...@ placeholders. Its
   graphite backend sends every flush to a TCP sink on @GRAPHITE_PORT@ standing in for carbon,
   from which the runner reads etsy's own statsd.metrics_received back. Defaults otherwise: the
   kernel's default UDP receive buffer. */
{ port: @STATSD_PORT@, address: "127.0.0.1", mgmt_port: @MGMT_PORT@, mgmt_address: "127.0.0.1",
  flushInterval: @FLUSH_MS@, backends: ["./backends/graphite"],
  graphiteHost: "127.0.0.1", graphitePort: @GRAPHITE_PORT@, graphite: { legacyNamespace: true } }
