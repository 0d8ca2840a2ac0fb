#!/usr/bin/env python3
"""An SMTP server played by the third-party `aiosmtpd` (PyPI), for hotsite's
e-mail channel to send to (crates/messaging/tests/email.rs).

Usage: smtp_server.py PORT [--starttls | --tls] [--auth USER:PASSWORD]
                      [--reject-rcpt CODE] [--reject-data CODE]
                      [--queue-id ID] [--lifetime SECONDS]

Listens on 127.0.0.1:PORT (0: a free port). The first stdout line is
`{"event": "ready", "port": N, "ca_pem": "..." | null}`; every later line is
one JSON event:

- `mail`: one accepted e-mail: `mail_from`, `rcpt_tos`, `mail_options`, `tls`
  (whether the session was encrypted), `auth_user` (the AUTH login, or null),
  `headers` (every header as `[name, value]`, values unfolded and decoded),
  `message_id`, `x_hotsite_message_id`, `subject`, `from`, `to`,
  `content_type`, `charset`, `transfer_encoding`, `text` (the decoded body,
  with `\n` line ends).
- `rejected`: a RCPT or DATA refused on purpose (`stage`, `reply`).
- `error`: what the script could not handle.

Options:

- `--starttls`: offer STARTTLS with a certificate for 127.0.0.1 and localhost,
  issued by a CA made for this run (`cryptography`); the CA's PEM is in the
  ready line, for the client to trust. STARTTLS is then required before MAIL.
- `--tls`: the same certificate, TLS from the first byte (SMTPS).
- `--auth USER:PASSWORD`: AUTH PLAIN and LOGIN, required, with that one
  account; anything else gets aiosmtpd's `535 5.7.8`.
- `--reject-rcpt CODE` / `--reject-data CODE`: answer every RCPT TO (or every
  end of DATA) with CODE (e.g. 550 or 451) and a canned text.
- `--queue-id ID`: the final reply is `250 2.0.0 Ok: queued as ID` (Postfix
  style) instead of aiosmtpd's `250 OK`.

The process exits after --lifetime seconds (default 60) so that a crashed test
run never leaves it behind.
"""

import argparse
import asyncio
import datetime
import email
import email.policy
import ipaddress
import json
import os
import ssl
import sys
import tempfile

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

REPLIES = {
    421: "421 4.3.2 Service shutting down",
    450: "450 4.2.1 Mailbox busy, try again later",
    451: "451 4.3.0 Temporary local problem, try again later",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 Mailbox unavailable",
    552: "552 5.3.4 Message too big",
    554: "554 5.7.1 Transaction failed",
}


def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def make_certificate(directory):
    """A CA and a server certificate it signs, for 127.0.0.1 and localhost.
    Returns (ssl server context, CA PEM text)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hotsite test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    cert_path = os.path.join(directory, "server.pem")
    key_path = os.path.join(directory, "server.key")
    with open(cert_path, "wb") as out:
        out.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, ca.public_bytes(serialization.Encoding.PEM).decode("ascii")


class Handler:
    def __init__(self, args):
        self.args = args

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.args.reject_rcpt:
            reply = REPLIES.get(self.args.reject_rcpt, f"{self.args.reject_rcpt} refused")
            emit({"event": "rejected", "stage": "rcpt", "reply": reply, "address": address})
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.args.reject_data:
            reply = REPLIES.get(self.args.reject_data, f"{self.args.reject_data} refused")
            emit({"event": "rejected", "stage": "data", "reply": reply})
            return reply
        try:
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            body = message.get_body(preferencelist=("plain",))
            login = getattr(session, "login_data", None)
            emit(
                {
                    "event": "mail",
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "mail_options": envelope.mail_options,
                    "tls": server.transport.get_extra_info("ssl_object") is not None,
                    "auth_user": login.decode() if isinstance(login, bytes) else login,
                    "headers": [[name, str(value)] for name, value in message.items()],
                    "message_id": message["Message-ID"],
                    "x_hotsite_message_id": message["X-Hotsite-Message-Id"],
                    "subject": message["Subject"],
                    "from": message["From"],
                    "to": message["To"],
                    "content_type": message.get_content_type(),
                    "charset": message.get_content_charset(),
                    "transfer_encoding": message["Content-Transfer-Encoding"],
                    "text": body.get_content().replace("\r\n", "\n") if body is not None else None,
                }
            )
        except Exception as error:  # report, do not kill the session
            emit({"event": "error", "error": repr(error)})
        if self.args.queue_id:
            return f"250 2.0.0 Ok: queued as {self.args.queue_id}"
        return "250 OK"


def authenticator_for(account):
    user, _, password = account.partition(":")

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticator


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--starttls", action="store_true")
    mode.add_argument("--tls", action="store_true")
    parser.add_argument("--auth")
    parser.add_argument("--reject-rcpt", type=int)
    parser.add_argument("--reject-data", type=int)
    parser.add_argument("--queue-id")
    parser.add_argument("--lifetime", type=float, default=60.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hotsite-smtp-") as directory:
        context, ca_pem = (None, None)
        if args.starttls or args.tls:
            context, ca_pem = make_certificate(directory)
        handler = Handler(args)

        def factory():
            return SMTP(
                handler,
                hostname="hotsite-interop-smtp",
                ident="aiosmtpd (hotsite interop)",
                tls_context=context if args.starttls else None,
                require_starttls=bool(args.starttls),
                authenticator=authenticator_for(args.auth) if args.auth else None,
                auth_required=bool(args.auth),
                # With --tls the whole connection is encrypted, which aiosmtpd
                # only knows of for STARTTLS.
                auth_require_tls=not args.tls,
            )

        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, "127.0.0.1", args.port, ssl=context if args.tls else None
        )
        port = server.sockets[0].getsockname()[1]
        emit({"event": "ready", "port": port, "ca_pem": ca_pem})
        async with server:
            try:
                await asyncio.wait_for(server.serve_forever(), timeout=args.lifetime)
            except asyncio.TimeoutError:
                pass


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
