"""Signed requests and replies as PROTOCOL.md ("Authentication", "Instances")
describes them, written here in Python, independently of the C code, so the
tests check the plugin and the client against the document rather than
against themselves.
"""
import hashlib
import hmac
import os
import socket
import time


def key_of(secret_path):
    """The secret: the file's bytes without trailing whitespace."""
    return secret_path.read_bytes().rstrip(b" \t\r\n")


def request_mac(key, signed):
    return hmac.new(key, signed, hashlib.sha256).hexdigest().encode()


def reply_mac(key, signed):
    """A reply's MAC has "reply " in front, so no request can pass for one."""
    return hmac.new(key, b"reply " + signed, hashlib.sha256).hexdigest().encode()


def sign_request(key, body, sid=None, ts=None, nonce=None, id_is_nonce=True):
    """body, e.g. "NETRELOAD/2 reload wait=1", signed for instance sid (None: a
    hello); its id is its nonce unless told otherwise. Returns (line, nonce)."""
    nonce = nonce or os.urandom(8).hex()
    ts = int(time.time()) if ts is None else ts
    if id_is_nonce:
        head, verb, *rest = body.split(" ")
        body = " ".join([head, verb, f"id={nonce}", *rest])
    tail = (f" sid={sid}" if sid else "") + f" ts={ts} nonce={nonce}"
    signed = (body + tail).encode()
    return signed + b" mac=" + request_mac(key, signed) + b"\n", nonce


def sign_reply(key, text):
    signed = text.encode() if isinstance(text, str) else text
    return signed + b" mac=" + reply_mac(key, signed) + b"\n"


def reply_body(key, line):
    """The signed part of a reply line if its MAC is right, else None."""
    line = line.rstrip(b"\r\n")
    signed, sep, mac = line.rpartition(b" mac=")
    if not sep or not hmac.compare_digest(reply_mac(key, signed), mac):
        return None
    return signed.decode()


def exchange(port, data, udp=False, timeout=5.0, host="127.0.0.1"):
    """One request to host:port: over TCP everything until the server closes, over
    UDP the first datagram back (None if none comes within timeout)."""
    if udp:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(timeout)
            u.sendto(data, (host, port))
            try:
                return u.recv(2048)
            except socket.timeout:
                return None
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def hello(port, key, udp=False):
    """Ask the instance id; checks the answer is signed and echoes the hello's id."""
    line, nonce = sign_request(key, "NETRELOAD/2 hello")
    out = exchange(port, line, udp=udp)
    body = reply_body(key, out or b"")
    assert body and body.startswith(f"NETRELOAD/2 hello id={nonce} sid="), out
    return body.rsplit("sid=", 1)[1]
