"""Running the relay at scale: a Docker Swarm stack (compose.py) and what it shares with the
Helm chart backend (relaykit.chart): the runtime contract and the deployment checks."""
