"""Stand-ins for a netreload server on 127.0.0.1, for tests of what the client
believes and prints: each answers a request line with whatever answers(line)
returns (a list of byte strings), however forged or hostile. Use them as
context managers; they close their socket and thread on the way out.
"""
import socket
import threading


class FakeTcp:
    """A TCP listener answering each connection's first line with answers(line)."""

    def __init__(self, answers):
        self.answers = answers
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.target = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return  # closed
            with c:
                try:
                    c.settimeout(5)
                    line = c.recv(4096).split(b"\n")[0]
                    c.sendall(b"".join(self.answers(line)))
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()
        self.thread.join(2)


class FakeUdp:
    """A UDP socket answering every datagram with answers(datagram), to its
    sender: what an off-path sender spraying the client's port can do at best.
    got holds the datagrams in order."""

    def __init__(self, answers):
        self.answers = answers
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target = f"127.0.0.1:{self.port}"
        self.got = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            self.got.append(data)
            for a in self.answers(data):
                self.sock.sendto(a, peer)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(2)
        self.sock.close()
