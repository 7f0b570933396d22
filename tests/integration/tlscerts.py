"""Throw-away TLS material for the tests, made at run time with the `openssl` CLI.

    certs = make_certs(directory)   # CA, server cert for 127.0.0.1/localhost, client certs
    certs.ca, certs.server_cert, certs.server_key, certs.client("app") -> (cert, key)

Nothing here is committed: every test run creates its own keys in its temp directory.
"""

import os
import subprocess


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Certs:
    def __init__(self, directory):
        self.dir = directory
        self.ca = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        self.server_cert = os.path.join(directory, "server.crt")
        self.server_key = os.path.join(directory, "server.key")

    def _signed(self, name, subject, ext=None):
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        crt = os.path.join(self.dir, name + ".crt")
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                 "-subj", subject, "-out", csr, cwd=self.dir)
        args = ["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                "-CAcreateserial", "-days", "2", "-sha256", "-out", crt]
        if ext:
            extfile = os.path.join(self.dir, name + ".ext")
            with open(extfile, "w") as f:
                f.write(ext)
            args += ["-extfile", extfile]
        _openssl(*args, cwd=self.dir)
        os.chmod(key, 0o600)
        return crt, key

    def client(self, user):
        """A client certificate whose common name is `user`, signed by our CA."""
        return self._signed("client-" + user, "/CN=" + user)


def make_certs(directory):
    """A CA, a server certificate for 127.0.0.1 and localhost, in `directory`."""
    os.makedirs(directory, exist_ok=True)
    c = Certs(directory)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", c.ca_key,
             "-subj", "/CN=pooler test CA", "-days", "2", "-out", c.ca, cwd=directory)
    c._signed("server", "/CN=localhost",
              "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    return c


def encrypt_key(key_file, out_file, passphrase):
    """A copy of a private key, encrypted with passphrase (AES-256)."""
    subprocess.run(["openssl", "pkey", "-in", key_file, "-aes256", "-passout",
                    "pass:" + passphrase, "-out", out_file], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.chmod(out_file, 0o600)
    return out_file
