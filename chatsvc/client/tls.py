# -*- test-case-name: tests.test_tls -*-
"""
C{chat-client --ca FILE}: a C{tls:} endpoint that trusts the certificates
in one PEM file (a private CA, or a server's self-signed certificate)
instead of the system's, and checks the server's name against it as usual.

    endpoint = tls_endpoint(reactor, "tls:host=chat.example:port=8443", "ca.pem")

Twisted's own C{tls:} description takes a I{directory} of trusted
certificates (C{trustRoots=DIR}); this takes a file.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List

from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint


def _split(description: str) -> List[str]:
    """The colon-separated parts of an endpoint description, backslash escapes undone."""
    parts = re.split(r"(?<!\\):", description)
    return [re.sub(r"\\(.)", r"\1", part) for part in parts]


def load_trust_root(path: str) -> Any:
    """
    The certificates of the PEM file C{path} as a trust root.

    @raise ValueError: if it cannot be read or holds no certificate.
    """
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"--ca {path}: {e.strerror or e}") from None
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.S)
    if not blocks:
        raise ValueError(f"--ca {path}: no PEM certificate in it")
    try:
        return trustRootFromCertificates([Certificate.loadPEM(block) for block in blocks])
    except Exception as e:  # OpenSSL's errors are of several kinds
        raise ValueError(f"--ca {path}: not a certificate ({type(e).__name__})") from None


def tls_endpoint(reactor: Any, description: str, ca_file: str) -> IStreamClientEndpoint:
    """
    The endpoint of a C{tls:} description (C{host}, C{port}, C{timeout},
    C{bindAddress}, C{endpoint}, as Twisted's), trusting C{ca_file}.

    @raise ValueError: for a description that is not C{tls:} or lacks a host
        or a port, or a bad C{ca_file}; without TLS support installed.
    """
    try:
        from twisted.internet.ssl import optionsForClientTLS
    except ImportError as e:  # pragma: no cover - pyOpenSSL is a dependency of twisted[tls]
        raise ValueError(f"TLS needs twisted[tls]: {e}") from None
    kind, *parts = _split(description)
    if kind != "tls":
        raise ValueError("--ca is for tls: endpoints (e.g. tls:host=chat.example:port=8443)")
    positional = [part for part in parts if "=" not in part]
    params: Dict[str, str] = dict(part.split("=", 1) for part in parts if "=" in part)
    for key, value in zip(("host", "port"), positional):
        params.setdefault(key, value)
    unknown = set(params) - {"host", "port", "timeout", "bindAddress", "endpoint"}
    if unknown:
        raise ValueError(f"--ca with tls: does not take {', '.join(sorted(unknown))}")
    if "host" not in params or not params.get("port", "").isdigit():
        raise ValueError("a tls: endpoint needs host= and port=")
    options = optionsForClientTLS(params["host"], trustRoot=load_trust_root(ca_file))
    if "endpoint" in params:
        inner = clientFromString(reactor, params["endpoint"])
    else:
        bind = params.get("bindAddress")
        inner = HostnameEndpoint(reactor, params["host"].encode("idna"), int(params["port"]),
                                 timeout=float(params.get("timeout", 30)),
                                 bindAddress=None if bind is None else (bind, 0))
    return wrapClientTLS(options, inner)
