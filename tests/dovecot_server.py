"""A throwaway dovecot IMAP server for tests and benchmarks: its own config, port and folder,
running as root with mail stored as 'nobody' (scripts/ensure-dovecot.sh installs dovecot)."""
from __future__ import annotations

import imaplib
import socket
import subprocess
import time
from pathlib import Path

PASSWORD = "s3cret-imap"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        for name in ("run", "state", "mail"):
            (root / name).mkdir(parents=True, exist_ok=True)
        (root / "mail").chmod(0o777)
        (root / "users").write_text(f"support:{{PLAIN}}{PASSWORD}\n")
        self.conf = root / "dovecot.conf"
        self.conf.write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
default_internal_user = nobody
default_login_user = nobody
""")

    def start(self) -> None:
        # dovecot forks into the background: its output must not be a pipe run() waits on
        subprocess.run(["dovecot", "-c", str(self.conf)], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start: " + (self.root / "dovecot.log").read_text()[-2000:])

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.conf), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    def doveadm(self, *args: str) -> None:
        subprocess.run(["doveadm", "-c", str(self.conf), *args], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)

    def client(self, folder: str = "INBOX") -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        conn.login("support", PASSWORD)
        conn.select(folder)
        return conn
