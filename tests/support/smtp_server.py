#!/usr/bin/python3
"""A test SMTP server for dag::test::SmtpServer (tests/support/smtp_server.hpp).

Listens on 127.0.0.1:PORT with aiosmtpd, stores every accepted message byte for byte in
a Maildir, and prints one line per event on stdout (flushed), which the fixture awaits:

  READY port=<port>                     listening
  MESSAGE <json>                        a message was stored; json: key (Maildir key),
                                        mail_from, rcpt_tos, subject (RFC 2047 decoded),
                                        parts [{content_type, charset, transfer_encoding,
                                        text}] (leaf parts, decoded), defects, headers
                                        [[name, decoded value]], max_line (longest line in
                                        bytes, without CRLF), tls, auth_login
  REFUSED rcpt=<address> code=<code>    a recipient was refused (--reject / --tempfail)

Modes: --reject ADDR (550 to RCPT TO for ADDR), --tempfail ADDR (451 to RCPT TO),
--auth USER:PASSWORD (AUTH required; PLAIN and LOGIN, also without TLS),
--tls-cert/--tls-key (offer STARTTLS, or with --implicit-tls speak TLS from the start),
--require-tls (refuse MAIL before STARTTLS), --headers-only (benchmarks: parse only the
headers), --workers N (benchmarks: N processes accept on the one listening socket, as a
mail relay runs many smtpd processes; each message is still stored with an fsync before
its 250, which with one process serialises every session behind the disk).
"""

import argparse
import asyncio
import ctypes
import email
import email.header
import email.policy
import json
import itertools
import mailbox
import os
import re
import signal
import socket
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def say(line):
    # One write(2) per line: with --workers, several processes share this pipe, and a
    # line written at once is not interleaved with another's (up to PIPE_BUF; longer
    # lines only come from the full parse, which benchmarks leave out).
    data = (line + "\n").encode()
    while data:
        data = data[os.write(1, data):]


def start_workers(count):
    """Forks count - 1 more processes serving the listening socket already made; returns
    their pids in the parent, None in a child. A child dies with its parent."""
    children = []
    for _ in range(count - 1):
        pid = os.fork()
        if pid == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:
                os._exit(0)  # the parent died before prctl
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            return None
        children.append(pid)
    return children


SUBJECT = re.compile(rb"^Subject:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)",
                     re.IGNORECASE | re.MULTILINE)


def subject_of(raw):
    """The Subject header of `raw`, RFC 2047 decoded, found without parsing the message:
    benchmarks need only this, and the email package's header parse cost this single
    thread more than a millisecond per message."""
    end = raw.find(b"\r\n\r\n")
    match = SUBJECT.search(raw, 0, len(raw) if end < 0 else end + 2)
    if match is None:
        return ""
    value = re.sub(rb"\r\n(?=[ \t])", b"", match.group(1)).decode("ascii", "replace")
    return str(email.header.make_header(email.header.decode_header(value)))


class Handler:
    def __init__(self, args, maildir):
        self.args = args
        self.maildir = maildir
        self.counter = itertools.count(1)

    def store(self, raw):
        """Delivers `raw` into the Maildir byte for byte (mailbox.Maildir.add would turn
        CRLF into LF): written under tmp/, then renamed into new/."""
        key = "%d.P%dQ%d.dag-test" % (time.time(), os.getpid(), next(self.counter))
        tmp = os.path.join(self.maildir, "tmp", key)
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.maildir, "new", key))
        return key

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.args.reject:
            say(f"REFUSED rcpt={address} code=550")
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
        if address.lower() in self.args.tempfail:
            say(f"REFUSED rcpt={address} code=451")
            return "451 4.3.0 <%s>: Temporary failure, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        key = self.store(raw)  # on a thread it cost more CPU than the loop's wait for fsync
        if self.args.headers_only:
            # Benchmarks: the whole parse below costs milliseconds of this single thread
            # per message, more than a mail relay spends; the subject is all they need.
            say("MESSAGE " + json.dumps({
                "key": key,
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "subject": subject_of(raw),
                "headers": [], "parts": [], "defects": [], "max_line": 0, "bare_lf": False,
                "tls": session.ssl is not None,
                "auth_login": session.auth_data.login.decode() if session.auth_data else None,
            }))
            return "250 2.0.0 OK queued as %s" % key
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            try:
                text = part.get_content()
            except Exception as error:  # report, do not crash the server
                text = "<undecodable: %s>" % error
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            text = text.replace("\r\n", "\n")  # as a mail reader shows it
            parts.append({
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset() or "",
                "transfer_encoding": part.get("Content-Transfer-Encoding", ""),
                "text": text,
            })
        defects = [type(d).__name__ for d in message.defects]
        for part in message.walk():
            defects += [type(d).__name__ for d in part.defects if part is not message]
        lines = raw.split(b"\r\n")
        say("MESSAGE " + json.dumps({
            "key": key,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message.get("Subject", "")),
            "headers": [[name, str(value)] for name, value in message.items()],
            "parts": parts,
            "defects": defects,
            "max_line": max(len(line) for line in lines) if lines else 0,
            "bare_lf": b"\n" in raw.replace(b"\r\n", b""),
            "tls": session.ssl is not None,
            "auth_login": session.auth_data.login.decode() if session.auth_data else None,
        }))
        return "250 2.0.0 OK queued as %s" % key


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--reject", action="append", default=[])
    parser.add_argument("--tempfail", action="append", default=[])
    parser.add_argument("--auth")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--require-tls", action="store_true")
    parser.add_argument("--headers-only", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    args.reject = [a.lower() for a in args.reject]
    args.tempfail = [a.lower() for a in args.tempfail]

    mailbox.Maildir(args.maildir, create=True)  # makes cur/, new/, tmp/
    handler = Handler(args, args.maildir)
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)

    authenticator = None
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
                  and auth_data.password.decode() == password)
            return AuthResult(success=ok, auth_data=auth_data if ok else None)

    # The socket is made before any fork, so that every worker accepts on it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    sock.setblocking(False)
    children = start_workers(max(1, args.workers))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        kwargs = dict(hostname="dag-test-smtp", ident="dag-test-smtp", loop=loop)
        if context is not None and not args.implicit_tls:
            kwargs.update(tls_context=context, require_starttls=args.require_tls)
        if authenticator is not None:
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=False)
        return SMTP(handler, **kwargs)

    server = loop.run_until_complete(loop.create_server(
        factory, sock=sock, ssl=context if args.implicit_tls else None))
    if children is None:
        loop.run_forever()
        return
    if children:
        # Stopping the parent stops the workers, and it ends only after them, so that the
        # fixture reading stdout to its end sees every line they wrote.
        def stop_all():
            for pid in children:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            for pid in children:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            os._exit(0)
        loop.add_signal_handler(signal.SIGTERM, stop_all)
    port = server.sockets[0].getsockname()[1]
    say(f"READY port={port}")
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
