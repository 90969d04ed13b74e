"""main.cf parameters: which ones relaykit writes (managed), and the `postfix.main_cf`
escape hatch, an ALLOWLIST of parameters that cannot weaken relay control,
authentication or TLS, each with the grammar of its value.

Anything else is refused: a parameter relaykit writes names the profile field to use;
an unknown or trust-changing one says why it is not offered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from relaykit.profile.restrictions import HOSTNAME


class Grammar(Protocol):
    def parse(self, value: Any) -> str:
        """The value as main.cf text, or ValueError saying what is wrong."""

    def describe(self) -> str: ...


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError("a yes/no is not allowed here")
    return str(value)


@dataclass(frozen=True)
class Integer:
    lo: int
    hi: int

    def parse(self, value: Any) -> str:
        text = _text_of(value)
        if not re.fullmatch(r"[0-9]{1,12}", text) or not self.lo <= int(text) <= self.hi:
            raise ValueError(f"{value!r} is not {self.describe()}")
        return str(int(text))

    def describe(self) -> str:
        return f"an integer from {self.lo} to {self.hi}"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Duration:
    lo: int  # seconds
    hi: int

    def parse(self, value: Any) -> str:
        text = _text_of(value)
        m = re.fullmatch(r"([0-9]{1,9})([smhdw])", text)
        if m is None or not self.lo <= int(m[1]) * _UNITS[m[2]] <= self.hi:
            raise ValueError(f"{value!r} is not {self.describe()}")
        return f"{int(m[1])}{m[2]}"

    def describe(self) -> str:
        return f"a time with its unit (s, m, h, d, w) from {self.lo}s to {self.hi}s, e.g. 30s"


@dataclass(frozen=True)
class YesNo:
    def parse(self, value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if value in ("yes", "no"):
            return str(value)
        raise ValueError(f"{value!r} is not {self.describe()}")

    def describe(self) -> str:
        return "yes or no"


@dataclass(frozen=True)
class Choices:
    """One word, or (several=True) a comma-separated set of them."""

    words: tuple[str, ...]
    several: bool = False

    def parse(self, value: Any) -> str:
        text = _text_of(value)
        parts = [w.strip() for w in text.split(",")] if self.several else [text]
        if not parts or any(p not in self.words for p in parts) or len(set(parts)) != len(parts):
            raise ValueError(f"{value!r} is not {self.describe()}")
        return ", ".join(parts)

    def describe(self) -> str:
        what = "a comma-separated set of" if self.several else "one of"
        return f"{what} {', '.join(self.words)}"


@dataclass(frozen=True)
class Hostname:
    def parse(self, value: Any) -> str:
        text = _text_of(value)
        if text != "$myhostname" and not re.fullmatch(HOSTNAME, text):
            raise ValueError(f"{value!r} is not {self.describe()}")
        return text

    def describe(self) -> str:
        return "a host name (or $myhostname)"


@dataclass(frozen=True)
class Banner:
    def parse(self, value: Any) -> str:
        text = _text_of(value)
        # RFC 5321: the greeting starts with the host name; no other $expansion.
        if not re.fullmatch(r"\$myhostname( [\x20-\x23\x25-\x7e]{1,200})?", text):
            raise ValueError(f"{value!r} is not {self.describe()}")
        return text

    def describe(self) -> str:
        return "$myhostname, then printable text without $, e.g. \"$myhostname ESMTP\""


DAY = 86400

# Parameters a profile may set through postfix.main_cf, with their value grammar.
ALLOWED: dict[str, Grammar] = {
    "smtpd_banner": Banner(),
    "smtpd_timeout": Duration(1, 3600),
    "smtpd_recipient_limit": Integer(1, 100_000),
    "smtpd_recipient_overshoot_limit": Integer(1, 100_000),
    "smtpd_soft_error_limit": Integer(1, 1000),
    "smtpd_error_sleep_time": Duration(0, 300),
    "smtpd_junk_command_limit": Integer(1, 1000),
    "smtpd_client_new_tls_session_rate_limit": Integer(0, 1_000_000),
    "smtpd_peername_lookup": YesNo(),
    "smtpd_tls_ask_ccert": YesNo(),
    "smtputf8_enable": YesNo(),
    "header_size_limit": Integer(1024, 10_485_760),
    "line_length_limit": Integer(1024, 1_048_576),
    "maximal_queue_lifetime": Duration(0, 100 * DAY),
    "bounce_queue_lifetime": Duration(0, 100 * DAY),
    "delay_warning_time": Duration(0, 100 * DAY),
    "minimal_backoff_time": Duration(1, DAY),
    "maximal_backoff_time": Duration(1, DAY),
    "queue_run_delay": Duration(1, DAY),
    "smtp_connect_timeout": Duration(1, 300),
    "smtp_helo_timeout": Duration(1, 3600),
    "smtp_helo_name": Hostname(),
    "default_process_limit": Integer(1, 1000),
    "default_destination_concurrency_limit": Integer(1, 1000),
    "smtp_destination_concurrency_limit": Integer(1, 1000),
    "in_flow_delay": Duration(0, 10),
    "notify_classes": Choices(("bounce", "2bounce", "delay", "policy", "protocol",
                               "resource", "software"), several=True),
}

# Parameters relaykit writes (main.cf or a listener's -o), and the field that sets them.
FIXED = "(fixed by relaykit)"
MANAGED: dict[str, str] = {
    "compatibility_level": FIXED, "biff": FIXED, "append_dot_mydomain": FIXED,
    "disable_vrfy_command": FIXED, "maillog_file": FIXED + " (image: logs to stdout)",
    "myhostname": "postfix.myhostname", "mydomain": "postfix.mydomain",
    "mydestination": "postfix.mydestination", "mynetworks": "postfix.mynetworks",
    "inet_interfaces": "postfix.inet_interfaces", "inet_protocols": "postfix.inet_protocols",
    "message_size_limit": "postfix.message_size_limit",
    "mailbox_size_limit": "postfix.message_size_limit (kept at least as large)",
    "relayhost": "outbound.relayhost",
    "smtpd_helo_required": "restrictions.helo_required",
    "smtpd_client_restrictions": "restrictions.client or listeners[].client_restrictions",
    "smtpd_helo_restrictions": "restrictions.helo",
    "smtpd_sender_restrictions": "restrictions.sender",
    "smtpd_relay_restrictions": "restrictions.relay or listeners[].relay_restrictions",
    "smtpd_recipient_restrictions": "restrictions.recipient",
    "smtpd_tls_cert_file": "tls.cert_file", "smtpd_tls_key_file": "tls.key_file",
    "smtpd_tls_security_level": "listeners[].tls", "smtpd_tls_wrappermode": "listeners[].tls",
    "smtpd_tls_protocols": "tls.protocols", "smtpd_tls_mandatory_protocols": "tls.protocols",
    "smtpd_tls_ciphers": "tls.mandatory_ciphers",
    "smtpd_tls_mandatory_ciphers": "tls.mandatory_ciphers",
    "smtpd_tls_exclude_ciphers": FIXED + " (anonymous and NULL suites excluded)",
    "smtpd_tls_mandatory_exclude_ciphers": FIXED + " (anonymous and NULL suites excluded)",
    "smtpd_tls_received_header": FIXED, "smtpd_tls_loglevel": FIXED,
    "smtpd_tls_session_cache_database": FIXED,
    "smtp_tls_security_level": "outbound.tls_level",
    "smtp_tls_wrappermode": "outbound.relayhost (port 465 means implicit TLS)",
    "smtp_tls_protocols": "tls.protocols", "smtp_tls_mandatory_protocols": "tls.protocols",
    "smtp_tls_ciphers": "tls.mandatory_ciphers",
    "smtp_tls_mandatory_ciphers": "tls.mandatory_ciphers",
    "smtp_tls_exclude_ciphers": FIXED + " (anonymous and NULL suites excluded)",
    "smtp_tls_mandatory_exclude_ciphers": FIXED + " (anonymous and NULL suites excluded)",
    "smtp_tls_CAfile": FIXED, "smtp_tls_loglevel": FIXED,
    "smtp_tls_session_cache_database": FIXED,
    "cyrus_sasl_config_path": FIXED + " (/etc/postfix/sasl)",
    "smtpd_sasl_auth_enable": "listeners[].auth", "smtpd_sasl_path": FIXED,
    "smtpd_sasl_local_domain": "sasl.realm",
    "smtpd_sasl_security_options": "sasl.security_options",
    "smtpd_sasl_tls_security_options": "sasl.tls_security_options",
    "smtpd_tls_auth_only": "sasl.auth_only_over_tls",
    "broken_sasl_auth_clients": "sasl.broken_clients",
    "smtpd_sasl_authenticated_header": FIXED,
    "smtp_sasl_auth_enable": "outbound.sasl",
    "smtp_sasl_password_maps": "outbound.credentials_file",
    "smtp_sasl_security_options": "outbound.security_options",
    "smtp_sasl_tls_security_options": "outbound.tls_security_options",
    "syslog_name": FIXED + " (per listener)",
    # Abuse limits and sender binding (the `abuse` section, render.abuse) on AUTH
    # listeners: per listener -o, or main.cf lines that section writes.
    "anvil_rate_time_unit": "abuse.rate_time_unit",
    "smtpd_client_auth_rate_limit": "abuse.auth_rate",
    "smtpd_client_connection_rate_limit": "abuse.connection_rate",
    "smtpd_client_connection_count_limit": "abuse.connection_count",
    "smtpd_client_message_rate_limit": "abuse.message_rate",
    "smtpd_client_recipient_rate_limit": "abuse.recipient_rate",
    "smtpd_hard_error_limit": "abuse.error_limit",
    "smtpd_sender_login_maps": "abuse.sender_binding",
    "smtpd_restriction_classes": "abuse.sender_binding / abuse.null_sender (a class "
                                 "could also hide `permit` from the relay check)",
    "relaykit_auth_sender": "abuse.sender_binding / abuse.null_sender",
    "header_checks": "abuse.hide_client_ip",
}

# Why some well-known parameters are not offered: they hand out trust or weaken TLS.
NOT_OFFERED: dict[str, str] = {
    "relay_domains": "it makes Postfix relay to the listed domains for anybody",
    "permit_mx_backup_networks": "it widens permit_mx_backup",
    "mynetworks_style": "it trusts whole subnets; list postfix.mynetworks instead",
    "smtpd_authorized_xclient_hosts": "XCLIENT lets those hosts impersonate any client",
    "smtpd_authorized_xforward_hosts": "XFORWARD feeds client identity to Postfix",
    "smtpd_upstream_proxy_protocol": "a PROXY header lets the client choose its address",
    "postscreen_upstream_proxy_protocol": "a PROXY header lets the client choose its address",
    "relay_clientcerts": "certificates listed there may relay",
    "smtpd_tls_fingerprint_digest": "it changes which certificates match",
    "smtp_tls_policy_maps": "it can turn off outbound.tls_level per destination",
    "smtpd_sasl_type": "relaykit configures Cyrus SASL",
    "smtp_sasl_mechanism_filter": "it changes outbound authentication",
    "smtpd_sasl_exceptions_networks": "it hides AUTH from networks relaykit cannot see",
    "soft_bounce": "it turns every refusal, relay denial included, into a retry",
    "smtpd_null_access_lookup_key": "it changes what access maps see",
    "smtpd_delay_reject": "it changes when, and so whether, restriction lists apply",
    "smtpd_reject_unlisted_recipient": "it changes the recipient checks",
    "transport_maps": "routing is decided by outbound.relayhost",
    "default_transport": "routing is decided by outbound.relayhost",
}

# name -> (replacement, removed from Postfix rather than only deprecated)
OBSOLETE: dict[str, tuple[str, bool]] = {
    "smtpd_sasl_application_name": ("smtpd_sasl_path (Postfix >= 2.3)", True),
    "virtual_maps": ("virtual_alias_maps", True),
    "smtpd_use_tls": ("listeners[].tls (smtpd_tls_security_level)", False),
    "smtpd_enforce_tls": ("listeners[].tls: starttls-required", False),
    "smtp_use_tls": ("outbound.tls_level (smtp_tls_security_level)", False),
    "smtp_enforce_tls": ("outbound.tls_level: encrypt", False),
    "disable_dns_lookups": ("smtp_dns_support_level", False),
    "smtpd_tls_dh512_param_file": ("nothing: export ciphers are gone", False),
}

assert not set(ALLOWED) & set(MANAGED), "a parameter is both allowed and managed"
