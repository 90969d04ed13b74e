"""Where verification runs: network namespaces, a Docker engine, Debian test roots,
test secrets and the sink that stands in for the next hop."""
