"""relaykit: declarative profiles into authenticated Postfix + Cyrus SASL relays.

Pipeline: profile (YAML) -> validated model -> rendered overlay tree -> artifact (OCI, deb)
-> verify / publish.  Each stage is a module (or package) of its own.
"""

__version__ = "0.1.0"
