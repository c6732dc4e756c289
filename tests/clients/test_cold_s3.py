"""The cold tier on S3: `floe serve --storage s3://bucket/prefix` against a local S3 (moto in
server mode, a subprocess on a free loopback port). Rows go cold the way they do in production:
the hot tier passes half its share of a small `--memory-limit` and a checkpoint (background,
or `CHECKPOINT`) flushes them into Parquet runs listed by a numbered manifest. The tests look
at the bucket with boto3 (runs and manifest versions under the prefix, Parquet files, the
manifest listing every run), check answers against a model of the table (full scans,
aggregates, point lookups by key and by a UNIQUE column, ranges), change cold keys (UPDATE,
DELETE, re-INSERT, ON CONFLICT, 23505 against cold keys), restart Floe on the same data dir and
bucket after SIGTERM and after SIGKILL, and cut the store off to see SQLSTATE 58030.

The main tests reach moto over HTTPS (a throwaway CA in SSL_CERT_FILE), as a real S3 endpoint
is reached; `test_plain_http_loopback_endpoint` checks the plain http:// loopback setup of local
test servers (`AWS_ALLOW_HTTP` and Floe's own loopback allowance)."""

import datetime
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import boto3
import psycopg
import pytest
from botocore.config import Config

from conftest import TARGET
from servers import Server, floe_binary, free_port

pytestmark = pytest.mark.skipif(TARGET != "floe", reason="Floe's cold tier on S3")

# The hot tier's share is 3/5 of the limit (~10 MB); rows go cold once the hot tier holds more
# than half of that (~5 MB, some 27,000 rows of `t`). Small, so a test fills it in a second or
# two. The tests sort on the client side.
MEMORY_LIMIT = "16MB"
FIRST_BATCH = 16000
BATCH = 4000
MAX_BATCHES = 30
READY_TIMEOUT = 30.0

CREATE_T = (
    "CREATE TABLE t (id int PRIMARY KEY, v bigint NOT NULL, code text UNIQUE, pad text, "
    "note text)"
)
COLUMNS = "id, v, code, pad, note"


def row(i):
    """The row `insert_sql` inserts for key `i`, as psycopg returns it."""
    note = None if i % 3 == 0 else f"n{i % 10}"
    return (i, i * 7 - 3, f"c{i}", hashlib.md5(str(i).encode()).hexdigest(), note)


def insert_sql(first, last):
    return (
        f"INSERT INTO t SELECT g, g * 7 - 3, 'c' || g, md5(g::text), "
        f"CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || (g % 10) END "
        f"FROM generate_series({first}, {last}) AS g"
    )


# --- TLS material, moto, a cuttable TCP proxy --------------------------------------------------


def make_tls(directory):
    """A CA and a server certificate for 127.0.0.1 signed by it; returns (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = dict(
        not_valid_before=now - datetime.timedelta(hours=1),
        not_valid_after=now + datetime.timedelta(days=2),
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "floe test CA")])
    ca = (
        x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, **valid)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
            issuer_name=ca_name,
            **valid,
        )
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = [os.path.join(directory, name) for name in ("ca.pem", "cert.pem", "key.pem")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return tuple(paths)


class Moto:
    """`python -m moto.server` on a free loopback port (HTTPS when given a certificate)."""

    def __init__(self, workdir, tls=None):
        self.port = free_port()
        self.ca = tls[0] if tls else None
        scheme = "https" if tls else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, f"moto-{self.port}.log")
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        if tls:
            cmd += ["-c", tls[1], "-k", tls[2]]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.s3 = self.client()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.s3.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto did not answer within {READY_TIMEOUT}s")
                time.sleep(0.1)

    def client(self, endpoint=None):
        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
            verify=self.ca if self.ca else False,
            config=Config(
                connect_timeout=2,
                read_timeout=20,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        )

    def new_bucket(self):
        name = f"floe-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=name)
        return name

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class TcpProxy:
    """Forwards a free loopback port to `target_port`. `down()` makes the store unreachable:
    new connections are refused and open ones cut; `up()` serves on the same port again."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._listener = None
        self._thread = None
        self._conns = set()
        self.up()

    def up(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        with self._lock:
            self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def down(self):
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            listener.close()
        for conn in conns:
            self._cut(conn)
        if self._thread is not None:
            self._thread.join(timeout=5)

    @staticmethod
    def _cut(conn):
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()

    def _accept(self, listener):
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    self._cut(client)
                    self._cut(upstream)
                    return
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (src, dst):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# --- Floe on S3 --------------------------------------------------------------------------------


class ColdFloe(Server):
    """A `floe serve` on S3 whose data dir outlives it (so it can be restarted)."""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends `sig` and waits; returns the exit code. Never removes files."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"floe did not stop within {timeout}s of {sig!r}:\n{self.log_tail()}"
                )
        return self.proc.returncode


class Deployment:
    """One data dir and one `s3://bucket/prefix`; `start()` runs a Floe on them (again)."""

    def __init__(self, workdir, endpoint, bucket, ca=None, prefix=None):
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "data")
        self.bucket = bucket
        self.prefix = prefix or f"floe/{uuid.uuid4().hex[:8]}"
        self.storage = f"s3://{bucket}/{self.prefix}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOE_"))}
        env.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_REGION="us-east-1",
            AWS_ALLOW_HTTP="true",
            AWS_EC2_METADATA_DISABLED="true",
        )
        if ca:
            env["SSL_CERT_FILE"] = ca
        self.env = env
        self.servers = []

    @property
    def current(self):
        return self.servers[-1]

    def logs(self, lines=30):
        return "\n".join(
            f"--- floe #{n} (exit {s.proc.poll()}):\n{s.log_tail(lines)}"
            for n, s in enumerate(self.servers)
        )

    def start(self, *extra):
        binary = floe_binary()
        if not binary.exists():
            raise RuntimeError(f"floe binary {binary} not found; build it or set FLOE_BIN")
        port = free_port()
        log_path = os.path.join(self.workdir, f"floe-{len(self.servers)}.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    str(binary), "serve",
                    "--listen", f"127.0.0.1:{port}",
                    "--data-dir", self.data_dir,
                    "--memory-limit", MEMORY_LIMIT,
                    "--storage", self.storage,
                    "--log-level", os.environ.get("FLOE_TEST_LOG", "info"),
                    *extra,
                ],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = ColdFloe("floe", proc, port, self.workdir, log_path)
        self.servers.append(server)
        server.wait_ready()
        return server

    def connect(self):
        return psycopg.connect(self.current.dsn, autocommit=True)

    def cleanup(self):
        for server in self.servers:
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait()


@pytest.fixture(scope="module")
def workdir():
    path = tempfile.mkdtemp(prefix="floe-cold-s3-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def tls(workdir):
    return make_tls(workdir)


@pytest.fixture(scope="module")
def moto(workdir, tls):
    server = Moto(workdir, tls)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def deployments(workdir):
    """Makes Deployments for one test; kills their servers afterwards. Their log tails are
    printed at teardown (pytest shows them when the test failed)."""
    made = []

    def make(endpoint, bucket, ca=None):
        d = Deployment(tempfile.mkdtemp(dir=workdir), endpoint, bucket, ca)
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()
        print(f"{d.storage}, data dir {d.data_dir}:\n{d.logs()}")


@pytest.fixture
def deploy(moto, deployments):
    """A deployment on a fresh bucket of the module's moto (over HTTPS)."""
    return deployments(moto.endpoint, moto.new_bucket(), moto.ca)


# --- looking at the bucket ---------------------------------------------------------------------


RUN_NAME = re.compile(r"runs/(\d+)/(\d{20})-(\d{20})\.parquet")
MANIFEST_NAME = re.compile(r"manifest/(\d{20})\.json")


def bucket_objects(s3, d):
    """{name below the prefix: size} of everything in the deployment's bucket; asserts that
    nothing was written outside the prefix."""
    found = {}
    token = None
    while True:
        kwargs = {"Bucket": d.bucket}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        for obj in page.get("Contents", []):
            key = obj["Key"]
            assert key.startswith(d.prefix + "/"), f"{key} written outside {d.prefix}/"
            found[key[len(d.prefix) + 1:]] = obj["Size"]
        if not page.get("IsTruncated"):
            return found
        token = page["NextContinuationToken"]


def runs_in_bucket(s3, d):
    return sorted(name for name in bucket_objects(s3, d) if name.startswith("runs/"))


def newest_manifest(s3, d):
    """The newest manifest version in the bucket, parsed."""
    objects = bucket_objects(s3, d)
    names = sorted(n for n in objects if n.startswith("manifest/"))
    assert names, f"no manifest version under {d.storage}: {sorted(objects)}"
    for name in names:
        assert MANIFEST_NAME.fullmatch(name), name
    body = s3.get_object(Bucket=d.bucket, Key=f"{d.prefix}/{names[-1]}")["Body"].read()
    manifest = json.loads(body)
    assert manifest["version"] == int(MANIFEST_NAME.fullmatch(names[-1]).group(1))
    return manifest


def check_bucket(s3, d, rows):
    """The bucket holds Parquet runs and a manifest whose newest version lists exactly the run
    objects present, with `rows` versions in all; returns that manifest."""
    objects = bucket_objects(s3, d)
    manifest = newest_manifest(s3, d)
    runs = sorted(n for n in objects if n.startswith("runs/"))
    assert runs, f"no runs under {d.storage}: {sorted(objects)}"
    for name in runs:
        assert RUN_NAME.fullmatch(name), f"unexpected run name {name}"
        assert objects[name] > 8
        head = s3.get_object(Bucket=d.bucket, Key=f"{d.prefix}/{name}", Range="bytes=0-3")
        tail = s3.get_object(Bucket=d.bucket, Key=f"{d.prefix}/{name}", Range="bytes=-4")
        assert head["Body"].read() == b"PAR1" and tail["Body"].read() == b"PAR1", name
    listed = sorted(run["path"] for run in manifest["runs"])
    assert listed == runs, f"manifest v{manifest['version']} lists {listed}, bucket has {runs}"
    for run in manifest["runs"]:
        assert run["bytes"] == objects[run["path"]], run
    assert sum(run["rows"] for run in manifest["runs"]) == rows, manifest
    return manifest


# --- filling and checking the table ------------------------------------------------------------


def fill_until_cold(conn, s3, d, model, first):
    """Inserts rows `first`, `first + 1`, … in batches (the first FIRST_BATCH rows, then BATCH
    more at a time), each followed by CHECKPOINT, until a new run appears in the bucket;
    returns the next free key."""
    before = len(runs_in_bucket(s3, d))
    nxt = first
    for n in range(MAX_BATCHES):
        size = FIRST_BATCH if n == 0 else BATCH
        conn.execute(insert_sql(nxt, nxt + size - 1))
        for i in range(nxt, nxt + size):
            model[i] = row(i)
        nxt += size
        conn.execute("CHECKPOINT")
        if len(runs_in_bucket(s3, d)) > before:
            return nxt
    raise AssertionError(
        f"{nxt - first} rows and {MAX_BATCHES} checkpoints with --memory-limit {MEMORY_LIMIT} "
        f"made no run in {d.storage}; objects: {sorted(bucket_objects(s3, d))}\n{d.logs()}"
    )


def check(conn, model, keys, codes=()):
    """Every answer about `t` is the model's: the whole table, aggregates, a range, a filter,
    point lookups of `keys` (present or absent) and lookups by the UNIQUE column of `codes`.
    (Each lookup of a cold row reads S3, so the tests pick the keys that matter.)"""
    got = {r[0]: r for r in conn.execute(f"SELECT {COLUMNS} FROM t").fetchall()}
    missing = sorted(set(model) - set(got))[:5]
    extra = sorted(set(got) - set(model))[:5]
    wrong = [(model[k], got[k]) for k in sorted(set(got) & set(model)) if got[k] != model[k]][:5]
    assert not (missing or extra or wrong), (
        f"{len(got)} rows, want {len(model)}; missing {missing}, extra {extra}, wrong {wrong}"
    )
    rows = model.values()
    assert conn.execute(
        "SELECT count(*), sum(v), count(note), min(id), max(id), sum(length(pad)) FROM t"
    ).fetchone() == (
        len(model),
        sum(r[1] for r in rows),
        sum(r[4] is not None for r in rows),
        min(model),
        max(model),
        sum(len(r[3]) for r in rows if r[3] is not None),
    )
    assert conn.execute("SELECT count(*), sum(v) FROM t WHERE note = 'n7'").fetchone() == (
        sum(r[4] == "n7" for r in rows),
        sum(r[1] for r in rows if r[4] == "n7") or None,
    )
    low, high = 995, 1030
    got_range = sorted(conn.execute(f"SELECT id, v FROM t WHERE id BETWEEN {low} AND {high}"))
    assert got_range == [(k, model[k][1]) for k in sorted(model) if low <= k <= high]
    for k in keys:
        want = [model[k]] if k in model else []
        assert conn.execute(f"SELECT {COLUMNS} FROM t WHERE id = {k}").fetchall() == want, k
    by_code = {r[2]: r[0] for r in rows}
    for code in codes:
        want = [(by_code[code],)] if code in by_code else []
        assert conn.execute("SELECT id FROM t WHERE code = %s", [code]).fetchall() == want, code


def sqlstate_of(conn, sql):
    """The SQLSTATE `sql` fails with (it must fail)."""
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql)
    return info.value.sqlstate


def change_cold_keys(conn, model, cold):
    """UPDATE, DELETE, re-INSERT, ON CONFLICT and unique violations on keys in `cold` (keys
    held only by runs), applied to the model too."""
    a, b, c, d, e, f, g, h = cold[:8]

    assert conn.execute(f"UPDATE t SET v = v + 1000000, note = 'upd' WHERE id = {a}").rowcount == 1
    model[a] = (a, model[a][1] + 1000000, model[a][2], model[a][3], "upd")
    assert conn.execute(f"DELETE FROM t WHERE id = {b}").rowcount == 1
    del model[b]
    assert conn.execute(f"DELETE FROM t WHERE id = {b}").rowcount == 0
    # A range of cold rows, changed by a scan.
    ranged = conn.execute("UPDATE t SET note = 'ranged' WHERE id BETWEEN 1000 AND 1009")
    assert ranged.rowcount == 10
    for k in range(1000, 1010):
        model[k] = model[k][:4] + ("ranged",)

    # Unique violations against cold rows: the key, the UNIQUE column, by INSERT and UPDATE.
    assert sqlstate_of(conn, f"INSERT INTO t VALUES ({c}, 1, 'fresh-{c}', 'p', NULL)") == "23505"
    assert sqlstate_of(conn, f"INSERT INTO t VALUES (-1, 1, 'c{d}', 'p', NULL)") == "23505"
    assert sqlstate_of(conn, f"UPDATE t SET id = {d} WHERE id = {e}") == "23505"
    assert sqlstate_of(conn, f"UPDATE t SET code = 'c{c}' WHERE id = {e}") == "23505"

    # A deleted cold key and its UNIQUE value are free again.
    conn.execute(f"INSERT INTO t VALUES ({b}, 42, 'again-{b}', 'p', 'reborn')")
    model[b] = (b, 42, f"again-{b}", "p", "reborn")
    assert conn.execute(f"DELETE FROM t WHERE id = {f}").rowcount == 1
    code_f = model.pop(f)[2]
    conn.execute(f"INSERT INTO t VALUES (-2, -2, '{code_f}', NULL, NULL)")
    model[-2] = (-2, -2, code_f, None, None)

    # ON CONFLICT against cold keys.
    assert conn.execute(
        f"INSERT INTO t VALUES ({g}, 0, 'x-{g}', 'p', NULL) ON CONFLICT DO NOTHING"
    ).rowcount == 0
    assert conn.execute(
        f"INSERT INTO t VALUES ({h}, 5, 'x-{h}', 'p', NULL) "
        "ON CONFLICT (id) DO UPDATE SET v = t.v + excluded.v"
    ).rowcount == 1
    model[h] = (h, model[h][1] + 5) + model[h][2:]

    # A rolled-back change of a cold key leaves it as it was.
    with conn.transaction(force_rollback=True):
        conn.execute(f"UPDATE t SET v = 0 WHERE id = {g}")
        conn.execute(f"DELETE FROM t WHERE id = {c}")


def restart(d, sig):
    """Stops the current server with `sig` and starts a new one on the same data dir and
    bucket."""
    code = d.current.stop(sig)
    if sig == signal.SIGTERM:
        assert code == 0, f"floe exited with {code} on SIGTERM:\n{d.logs()}"
    else:
        assert code == -sig, code
    return d.start()


# --- the tests ---------------------------------------------------------------------------------


def test_cold_rows_on_s3_answer_change_and_survive_a_clean_restart(moto, deploy):
    d = deploy
    s3 = moto.s3
    d.start()
    model = {}
    with d.connect() as conn:
        conn.execute(CREATE_T)
        # First wave: enough rows to pass half the hot share; the checkpoint makes them cold.
        nxt = fill_until_cold(conn, s3, d, model, 1)
        first_wave = nxt - 1
        manifest = check_bucket(s3, d, first_wave)
        assert len(manifest["runs"]) == 1, manifest
        (table_oid,) = {run["table_id"] for run in manifest["runs"]}
        keys = [0, 1, first_wave // 2, first_wave, 10**6]
        codes = ["c1", f"c{first_wave}", "c0"]
        check(conn, model, keys, codes)

        # Second wave, one transaction as big as the first: the hot tier takes it only because
        # the first wave left it (first + second would pass the hot share: 53200).
        conn.execute(insert_sql(nxt, nxt + first_wave - 1))
        for i in range(nxt, nxt + first_wave):
            model[i] = row(i)
        last = nxt + first_wave - 1
        conn.execute("CHECKPOINT")
        manifest = check_bucket(s3, d, len(model))
        assert len(manifest["runs"]) == 2, manifest
        assert {run["table_id"] for run in manifest["runs"]} == {table_oid}
        keys += [nxt, last, last + 1]
        codes += [f"c{last}"]
        check(conn, model, keys[-3:], codes[-1:])

        # Change keys of both runs (a..d in the first, e..h in the second).
        cold = [7, 8, 9, 10, nxt + 7, nxt + 8, nxt + 9, nxt + 10]
        change_cold_keys(conn, model, cold)
        keys += cold + [1000, 1009, -1, -2]
        codes += [f"c{k}" for k in cold] + [f"again-{cold[1]}"]
        check(conn, model, keys, codes)
        conn.execute("CHECKPOINT")

    restart(d, signal.SIGTERM)
    with d.connect() as conn:
        check(conn, model, keys, codes)
        # The unique checks see cold rows after restart too (the UNIQUE index is rebuilt).
        assert sqlstate_of(conn, "INSERT INTO t VALUES (11, 0, 'z', NULL, NULL)") == "23505"
        assert sqlstate_of(conn, f"INSERT INTO t VALUES (-3, 0, 'c{last}', NULL, NULL)") == "23505"
        assert conn.execute(f"UPDATE t SET v = -7 WHERE id = {last - 2}").rowcount == 1
        model[last - 2] = (last - 2, -7) + model[last - 2][2:]
        assert conn.execute("DELETE FROM t WHERE id = 12").rowcount == 1
        del model[12]
        keys += [last - 2, 12]
    # No flush since the second wave (the hot tier is small again): the same two runs.
    assert check_bucket(s3, d, 2 * first_wave)["runs"] == manifest["runs"]

    restart(d, signal.SIGTERM)
    with d.connect() as conn:
        check(conn, model, keys, codes)
    assert d.current.stop() == 0


def test_compaction_on_s3(moto, deploy):
    """Every checkpoint flushes (`--flush-age 0`) runs whose key ranges overlap; the background
    compactor merges them into level-1 runs in the bucket, the manifest lists exactly the runs
    present once the sweeper ran, and the answers stay the model's, also after a restart."""
    d = deploy
    s3 = moto.s3
    d.start("--flush-age", "0")
    model = {}
    rounds = 5
    with d.connect() as conn:
        conn.execute(CREATE_T)
        for r in range(rounds):
            # Interleaved keys: every run spans the whole key range.
            keys = range(r, 4000, rounds)
            conn.execute(
                f"INSERT INTO t SELECT g, g * 7 - 3, 'c' || g, md5(g::text), "
                f"CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || (g % 10) END "
                f"FROM generate_series({r}, 3999, {rounds}) AS g"
            )
            for i in keys:
                model[i] = row(i)
            if r > 0:
                conn.execute(f"DELETE FROM t WHERE id % 97 = {r}")
                for i in [k for k in model if k % 97 == r]:
                    del model[i]
            conn.execute("CHECKPOINT")
        deadline = time.time() + 60
        while time.time() < deadline:
            done = conn.execute(
                "SELECT count(*) FROM floe_catalog.compactions "
                "WHERE relname = 't' AND state = 'done' AND input_runs > 1"
            ).fetchone()[0]
            level0 = conn.execute(
                "SELECT count(*) FROM floe_catalog.cold_runs WHERE relname = 't' AND level = 0"
            ).fetchone()[0]
            if done and level0 < 4:
                break
            time.sleep(0.2)
        assert done and level0 < 4, (done, level0, d.logs())
        check(conn, model, [0, 1, 97, 3999, 4000], ["c0", "c1", "c3999"])
        # The sweeper deletes compacted-away runs once no reader holds them.
        deadline = time.time() + 30
        while time.time() < deadline:
            manifest = newest_manifest(s3, d)
            listed = sorted(run["path"] for run in manifest["runs"])
            if listed == runs_in_bucket(s3, d):
                break
            conn.execute("CHECKPOINT")
            time.sleep(0.5)
        assert listed == runs_in_bucket(s3, d), (listed, runs_in_bucket(s3, d))
        assert any(run["level"] == 1 for run in manifest["runs"]), manifest
    restart(d, signal.SIGKILL)
    with d.connect() as conn:
        check(conn, model, [0, 1, 97, 3999, 4000], ["c0", "c1", "c3999"])
    assert d.current.stop() == 0


def test_cold_rows_on_s3_survive_sigkill(moto, deploy):
    d = deploy
    s3 = moto.s3
    d.start()
    model = {}
    with d.connect() as conn:
        conn.execute(CREATE_T)
        nxt = fill_until_cold(conn, s3, d, model, 1)
        first = check_bucket(s3, d, nxt - 1)
        # Committed writes of cold keys, a checkpoint, more committed writes (in the log only).
        conn.execute("UPDATE t SET v = 1 WHERE id = 5")
        model[5] = (5, 1) + model[5][2:]
        conn.execute("DELETE FROM t WHERE id = 6")
        del model[6]
        conn.execute(f"INSERT INTO t VALUES ({nxt}, 3, 'new', NULL, 'hot')")
        model[nxt] = (nxt, 3, "new", None, "hot")
        conn.execute("CHECKPOINT")
        conn.execute("UPDATE t SET note = NULL WHERE id = 7")
        model[7] = model[7][:4] + (None,)
        conn.execute("DELETE FROM t WHERE id = 8")
        del model[8]
        conn.execute("INSERT INTO t VALUES (6, 66, 'c6', 'p', 'back')")
        model[6] = (6, 66, "c6", "p", "back")
        keys = [1, 5, 6, 7, 8, 9, nxt - 1, nxt, nxt + 1]
        codes = ["c5", "c6", "c8", "c9", "new"]
        check(conn, model, keys, codes)

    restart(d, signal.SIGKILL)
    with d.connect() as conn:
        check(conn, model, keys, codes)
        assert sqlstate_of(conn, "INSERT INTO t VALUES (9, 0, 'z', NULL, NULL)") == "23505"
        assert sqlstate_of(conn, "INSERT INTO t VALUES (-1, 0, 'c12', NULL, NULL)") == "23505"
        # The restarted server took over the manifest (a newer epoch) and flushes into it.
        taken_over = newest_manifest(s3, d)
        assert taken_over["epoch"] > first["epoch"], (first, taken_over)
        nxt = fill_until_cold(conn, s3, d, model, nxt + 1)
        runs = runs_in_bucket(s3, d)
        epochs = sorted(int(RUN_NAME.fullmatch(name).group(2)) for name in runs)
        assert len(runs) == 2 and epochs[0] < taken_over["epoch"] <= epochs[1], runs
        conn.execute("UPDATE t SET v = 2 WHERE id = 1")
        model[1] = (1, 2) + model[1][2:]
        conn.execute("DELETE FROM t WHERE id = 9")
        del model[9]
        keys += [nxt - 1, nxt]

    restart(d, signal.SIGKILL)
    with d.connect() as conn:
        check(conn, model, keys, codes)
    assert d.current.stop() == 0


def test_unreachable_s3_is_58030_and_the_session_goes_on(moto, deployments):
    proxy = TcpProxy(moto.port)
    try:
        d = deployments(f"https://127.0.0.1:{proxy.port}", moto.new_bucket(), moto.ca)
        d.start()
        model = {}
        with d.connect() as conn:
            conn.execute(CREATE_T)
            fill_until_cold(conn, moto.s3, d, model, 1)
            # A table made after the flush: its rows stay hot (the hot tier is small again).
            conn.execute("CREATE TABLE h (k int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO h VALUES (1, 'one')")
            key, other = 1234, 6789  # cold keys on different Parquet pages
            check(conn, model, [key], [f"c{key}"])

            proxy.down()
            started = time.monotonic()
            with pytest.raises(psycopg.Error) as info:
                conn.execute(f"SELECT {COLUMNS} FROM t WHERE id = {other}").fetchall()
            waited = time.monotonic() - started
            assert info.value.sqlstate == "58030", (info.value.sqlstate, str(info.value))
            # The session goes on: hot rows answer on the same connection.
            assert conn.execute("SELECT v FROM h WHERE k = 1").fetchall() == [("one",)]
            conn.execute("INSERT INTO h VALUES (2, 'two')")
            assert conn.execute("SELECT count(*) FROM h").fetchone() == (2,)
            # A scan of cold rows inside a transaction: 58030, the transaction is aborted
            # (25P02) until ROLLBACK, and its write is gone.
            conn.execute("BEGIN")
            conn.execute("INSERT INTO h VALUES (3, 'three')")
            assert sqlstate_of(conn, "SELECT sum(v) FROM t") == "58030"
            assert sqlstate_of(conn, "SELECT 1") == "25P02"
            conn.execute("ROLLBACK")
            assert conn.execute("SELECT k FROM h WHERE k = 3").fetchall() == []

            proxy.up()
            # The store is back: the same connection reads cold rows again, nothing changed.
            check(conn, model, [key, other], [f"c{other}"])
            assert conn.execute("SELECT count(*) FROM h").fetchone() == (2,)
        assert waited < 60, waited
        assert d.current.stop() == 0
    finally:
        proxy.down()


def test_plain_http_loopback_endpoint(workdir, deployments):
    """The documented local setup: moto over plain HTTP on 127.0.0.1 (store.rs allows HTTP for
    a loopback endpoint; AWS_ALLOW_HTTP=true is set as well)."""
    plain = Moto(workdir)
    try:
        d = deployments(plain.endpoint, plain.new_bucket())
        d.start()
        model = {}
        with d.connect() as conn:
            conn.execute(CREATE_T)
            fill_until_cold(conn, plain.s3, d, model, 1)
            check_bucket(plain.s3, d, len(model))
            check(conn, model, [1, len(model)], ["c1"])
        assert d.current.stop() == 0
    finally:
        plain.stop()
