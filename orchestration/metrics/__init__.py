"""Prometheus metrics of `lakemail runner` (`/metrics` on `--metrics-port`): what each micro-batch run did,
read from its result and the lake after the run (`record`), and the lake's figures (backlog, freshness,
disk), measured at most every few seconds however often Prometheus scrapes (`collector`). The `lakemail`
command imports `options` only: the rest loads with the runner."""
