"""A proxy in front of moto's RDS and STS APIs, for the local stack's tests only.

RDS: moto has no database behind RDS and never reveals a master password it was sent, so the
tests cannot otherwise see the exact ModifyDBInstance / ModifyDBCluster calls the functions make.
The functions' RDS endpoint (AWS_ENDPOINT_URL_RDS) points here; every RDS request is forwarded to
moto unchanged and its form parameters appended, one JSON object per line, to the file named on
the command line. The file holds the throw-away passwords of the test run; it lives in the
stack's directory and is deleted with it.

STS: moto answers GetCallerIdentity for any request that names an access key id, whatever the
signature, and lets an Inactive key authenticate. AWS does neither, and the rotation functions
rely on it: a secret proves it holds a key by a request signed with it. The STS and IAM endpoints
of the functions and of the tests (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_IAM) point here too.
IAM requests are forwarded, and the secret access key of each key CreateAccessKey returns is
kept in memory. STS requests signed with an IAM user's key are checked as AWS checks them before
they are forwarded: InvalidClientTokenId for a key IAM does not list or lists as Inactive,
SignatureDoesNotMatch when the Signature Version 4 signature was not made with the key's secret.
The stack's own credentials, which are no IAM user's key, are forwarded unchecked. After
`POST /_recorder/iam-propagation` with `{"user": NAME, "seconds": N}`, a key CreateAccessKey
returns for that user is refused as InvalidClientTokenId for N seconds, as AWS refuses a new
key until it has propagated. A checked STS request is checked and answered while no
DeleteAccessKey or UpdateAccessKey is forwarded: a key deleted between the check and moto's
answer would otherwise get moto's answer for a key it does not know, its default identity
(`user/moto`), where AWS answers as the key's user or refuses the key, never as someone else.

RDS applying a master password: AWS applies ModifyDBInstance / ModifyDBCluster's
MasterUserPassword asynchronously ("between the time of the request and the completion of the
request, the MasterUserPassword element exists in the PendingModifiedValues element"), and the
status stays `available` for a moment before it reads `resetting-master-credentials`; moto
applies it at once and has no database behind it. So after such a call this proxy answers
DescribeDBInstances / DescribeDBClusters for that resource with MasterUserPassword in
PendingModifiedValues for RDS_APPLY_SECONDS (status `available` for the first third, then
`resetting-master-credentials`), then sets the password on the local server that stands in for
the resource (PostgreSQL or MariaDB, by its engine; as a SCRAM verifier or a native hash, never
in cleartext) and answers as moto does. `POST /_recorder/apply-seconds` with
`{"id": ID, "seconds": N}` sets the delay of the next change of one resource (a test's own).
Each applied change is appended to the record file as {"Event": "applied", "id": ID, "at": T}.
The environment names the local servers: RDS_APPLY_SECONDS, PSQL, PG_SOCKET_DIR, PG_PORT,
PG_PASSWORD_FILE, MARIADB, MARIADB_PORT, MARIADB_PASSWORD_FILE.

Secrets Manager: the functions' Secrets Manager endpoint (AWS_ENDPOINT_URL_SECRETS_MANAGER) points
here too. AWS documents ListSecrets as eventually consistent (a secret or tag changed in the last
minutes may be missing from a listing); moto always answers with the current state. With
ROTATION_LIST_SECRETS_LAG_SECONDS=L (L > 0), a ListSecrets is answered from the listing made for
the same filters at most L seconds earlier, if there is one (else moto is asked, and its answer
kept for the next L seconds): a change may be missing from listings for up to L seconds, as on
AWS. Every other Secrets Manager call is forwarded unchanged (DescribeSecret and the others stay
consistent, as on AWS for one secret).

Usage: python rds-recorder.py LISTEN_PORT MOTO_URL RECORD_FILE
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

LISTEN_PORT, MOTO_URL, RECORD_FILE = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]

AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]+)"
)
# Key ids of IAM users (and of STS sessions); any other id is the stack's own credentials.
IAM_KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{12,}$")


def hmac_sha256(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def expected_signature(secret, method, path, headers, body, auth):
    """The SigV4 signature of the request as received, with `secret`."""
    raw_path, _, query = path.partition("?")
    pairs = sorted(urllib.parse.parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in pairs
    )
    signed = auth["signed"].split(";")
    canonical_headers = "".join(f"{h}:{' '.join((headers.get(h) or '').split())}\n" for h in signed)
    payload_hash = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    canonical_request = "\n".join(
        [method, raw_path or "/", canonical_query, canonical_headers, auth["signed"], payload_hash]
    )
    scope = f"{auth['date']}/{auth['region']}/{auth['service']}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            headers.get("x-amz-date", ""),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + secret).encode()
    for part in (auth["date"], auth["region"], auth["service"], "aws4_request"):
        key = hmac_sha256(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


KEYS = {}  # access key id -> (user name, secret access key, created), from CreateAccessKey answers
# IAM's eventual consistency: a new key of these users is refused as InvalidClientTokenId for
# this many seconds after CreateAccessKey (POST /_recorder/iam-propagation {"user", "seconds"}).
PROPAGATION_SECONDS = {}
KEYS_LOCK = threading.Lock()
# Held while a checked STS request is checked and forwarded, and while an IAM call that
# deletes or deactivates a key is forwarded: each STS answer is for a key state IAM had.
KEY_STATE_LOCK = threading.Lock()
MOTO_IAM = boto3.client(
    "iam",
    endpoint_url=MOTO_URL,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)


def remember_created_key(reply):
    """Keeps the secret of the key a CreateAccessKey answer holds."""
    fields = {
        name: re.search(f"<{name}>([^<]*)</{name}>", reply)
        for name in ("UserName", "AccessKeyId", "SecretAccessKey")
    }
    if all(fields.values()):
        with KEYS_LOCK:
            user = fields["UserName"][1]
            ready_at = time.time() + PROPAGATION_SECONDS.get(user, 0)
            KEYS[fields["AccessKeyId"][1]] = (user, fields["SecretAccessKey"][1], ready_at)


def iam_key(key_id):
    """The secret of an IAM access key that exists and is Active, or None."""
    with KEYS_LOCK:
        known = KEYS.get(key_id)
    if known is None:
        return None
    user, secret, ready_at = known
    if time.time() < ready_at:
        return None
    try:
        listed = MOTO_IAM.list_access_keys(UserName=user)["AccessKeyMetadata"]
    except MOTO_IAM.exceptions.NoSuchEntityException:
        return None
    active = any(k["AccessKeyId"] == key_id and k["Status"] == "Active" for k in listed)
    return secret if active else None


def sts_refusal(method, path, headers, body):
    """AWS's answer to an STS request moto would wrongly accept: (code, message), or None."""
    auth = AUTHORIZATION.match(headers.get("Authorization") or "")
    if not auth or not IAM_KEY_ID.match(auth["key"]):
        return None
    secret = iam_key(auth["key"])
    if secret is None:
        return ("InvalidClientTokenId", "The security token included in the request is invalid.")
    expected = expected_signature(secret, method, path, headers, body, auth)
    if not hmac.compare_digest(expected, auth["signature"]):
        return (
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return None


APPLY_SECONDS = float(os.environ.get("RDS_APPLY_SECONDS", "3"))
PENDING = {}  # (kind, id) -> (time the change is applied, its delay)
NEXT_DELAY = {}  # id -> seconds, for the next change of that resource
RDS_LOCK = threading.Lock()
MOTO_RDS = boto3.client(
    "rds",
    endpoint_url=MOTO_URL,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)


def record(entry):
    with open(RECORD_FILE, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def scram_verifier(password):
    """PostgreSQL's SCRAM-SHA-256 verifier of `password` (as libpq's PQencryptPasswordConn)."""
    salt, iterations = secrets.token_bytes(16), 4096
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def apply_on_local_server(kind, ident, password):
    """Sets the master password of the resource on the local server standing in for it."""
    if kind == "instance":
        found = MOTO_RDS.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    else:
        found = MOTO_RDS.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]
    engine, user = found["Engine"], found["MasterUsername"]
    if "postgres" in engine:
        ident_sql = '"' + user.replace('"', '""') + '"'
        literal = "'" + scram_verifier(password).replace("'", "''") + "'"
        with open(os.environ["PG_PASSWORD_FILE"], encoding="utf-8") as f:
            admin = f.read().strip()
        subprocess.run(
            [os.environ["PSQL"], "-q", "-h", os.environ["PG_SOCKET_DIR"], "-p", os.environ["PG_PORT"],
             "-U", "rotation_admin", "-d", "postgres", "-c", f"ALTER ROLE {ident_sql} PASSWORD {literal}"],
            env={**os.environ, "PGPASSWORD": admin}, check=True, capture_output=True,
        )
    else:
        digest = hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()
        account = "'" + user.replace("\\", "\\\\").replace("'", "\\'") + "'@'%'"
        with open(os.environ["MARIADB_PASSWORD_FILE"], encoding="utf-8") as f:
            admin = f.read().strip()
        subprocess.run(
            [os.environ["MARIADB"], "--no-defaults", "-h", "127.0.0.1", "-P", os.environ["MARIADB_PORT"],
             "-u", "rotation_admin", "-e", f"ALTER USER {account} IDENTIFIED BY PASSWORD '*{digest}'"],
            env={**os.environ, "MYSQL_PWD": admin}, check=True, capture_output=True,
        )


def start_change(kind, ident, password):
    """A master password change RDS has accepted: pending now, applied after the delay."""
    with RDS_LOCK:
        delay = NEXT_DELAY.pop(ident, APPLY_SECONDS)
        PENDING[(kind, ident)] = (time.time() + delay, delay)

    def apply():
        try:
            apply_on_local_server(kind, ident, password)
        except Exception as error:  # noqa: BLE001 - reported in the recorder's log
            # The error's type and exit status only: a CalledProcessError's text holds the
            # command, and the command holds the password's verifier or hash.
            status = getattr(error, "returncode", None)
            print(f"applying the master password of {kind} {ident} failed: {type(error).__name__} (exit status {status})",
                  file=sys.stderr, flush=True)
        with RDS_LOCK:
            PENDING.pop((kind, ident), None)
        record({"Event": "applied", "id": ident, "at": time.time()})

    timer = threading.Timer(delay, apply)
    timer.daemon = True
    timer.start()


def with_pending_changes(reply, kind):
    """moto's DescribeDB* answer, with the changes still pending shown as RDS shows them."""
    with RDS_LOCK:
        pending = {ident: at for (k, ident), at in PENDING.items() if k == kind}
    if not pending:
        return reply
    element, id_tag, status_tag = (
        ("DBInstance", "DBInstanceIdentifier", "DBInstanceStatus")
        if kind == "instance"
        else ("DBCluster", "DBClusterIdentifier", "Status")
    )

    def rewrite(match):
        block = match.group(0)
        found = re.search(f"<{id_tag}>([^<]*)</{id_tag}>", block)
        if not found or found[1] not in pending:
            return block
        applied_at, delay = pending[found[1]]
        left = max(applied_at - time.time(), 0)
        status = "available" if left > delay * 2 / 3 else "resetting-master-credentials"
        block = re.sub(f"<{status_tag}>[^<]*</{status_tag}>", f"<{status_tag}>{status}</{status_tag}>", block, count=1)
        block = re.sub(r"<PendingModifiedValues\s*/>|<PendingModifiedValues>.*?</PendingModifiedValues>", "", block, flags=re.S)
        return block.replace(
            f"</{element}>",
            "<PendingModifiedValues><MasterUserPassword>****</MasterUserPassword></PendingModifiedValues>"
            f"</{element}>",
        )

    return re.sub(f"<{element}>.*?</{element}>", rewrite, reply, flags=re.S)


LIST_SECRETS_LAG = float(os.environ.get("ROTATION_LIST_SECRETS_LAG_SECONDS") or 0)
LISTINGS = {}  # the request's filters -> (when moto was asked, the secrets it listed)
LISTINGS_LOCK = threading.Lock()


def moto_list_secrets(request):
    """Every secret moto's ListSecrets lists now for the request's filters (all pages)."""
    secrets, token = [], None
    while True:
        body = {k: v for k, v in request.items() if k not in ("NextToken", "MaxResults")}
        body["MaxResults"] = 100
        if token:
            body["NextToken"] = token
        forwarded = urllib.request.Request(
            MOTO_URL + "/",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "secretsmanager.ListSecrets",
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
            },
            method="POST",
        )
        with urllib.request.urlopen(forwarded, timeout=30) as response:
            page = json.loads(response.read())
        secrets.extend(page.get("SecretList", []))
        token = page.get("NextToken")
        if not token:
            return secrets


def lagged_list_secrets(body):
    """ListSecrets answered as a lagging AWS would (all in one page), or None to forward it."""
    if LIST_SECRETS_LAG <= 0:
        return None
    request = json.loads(body or b"{}")
    if request.get("NextToken"):
        return None
    key = json.dumps(
        {k: v for k, v in request.items() if k not in ("MaxResults",)}, sort_keys=True
    )
    now = time.monotonic()
    with LISTINGS_LOCK:
        kept = LISTINGS.get(key)
    if kept is None or now - kept[0] > LIST_SECRETS_LAG:
        kept = (now, moto_list_secrets(request))
        with LISTINGS_LOCK:
            LISTINGS[key] = kept
    return json.dumps({"SecretList": kept[1]}).encode()


def service_of(headers):
    auth = AUTHORIZATION.match(headers.get("Authorization") or "")
    return auth["service"] if auth else None


class Recorder(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/_recorder/iam-propagation":
            order = json.loads(body)
            with KEYS_LOCK:
                PROPAGATION_SECONDS[order["user"]] = float(order["seconds"])
            self.send_response(204)
            self.end_headers()
            return
        if self.path == "/_recorder/apply-seconds":
            order = json.loads(body)
            with RDS_LOCK:
                NEXT_DELAY[order["id"]] = float(order["seconds"])
            self.send_response(204)
            self.end_headers()
            return
        service = service_of(self.headers)
        params = {}
        if service == "sts":
            with KEY_STATE_LOCK:
                refusal = sts_refusal("POST", self.path, self.headers, body)
                if refusal:
                    self.reply_error(*refusal)
                else:
                    self.forward(body)
            return
        if service == "iam" and urllib.parse.parse_qs(body.decode()).get("Action") in (
            ["DeleteAccessKey"],
            ["UpdateAccessKey"],
        ):
            with KEY_STATE_LOCK:
                self.forward(body)
            return
        elif service == "secretsmanager":
            target = self.headers.get("X-Amz-Target") or ""
            lagged = lagged_list_secrets(body) if target.endswith(".ListSecrets") else None
            if lagged is not None:
                self.reply_json(lagged)
                return
        elif service != "iam":
            params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
            params["at"] = time.time()
            record(params)
            action = params.get("Action")
            if action in ("DescribeDBInstances", "DescribeDBClusters"):
                kind = "instance" if action == "DescribeDBInstances" else "cluster"
                self.forward(body, lambda reply: with_pending_changes(reply.decode(), kind).encode())
                return
        reply = self.forward(body)
        if service not in ("iam", "sts") and b"<ErrorResponse" not in reply and params.get("MasterUserPassword"):
            if params.get("Action") == "ModifyDBInstance":
                start_change("instance", params["DBInstanceIdentifier"], params["MasterUserPassword"])
            elif params.get("Action") == "ModifyDBCluster":
                start_change("cluster", params["DBClusterIdentifier"], params["MasterUserPassword"])
        if service == "iam" and b"<CreateAccessKeyResponse" in reply:
            remember_created_key(reply.decode())

    def forward(self, body, rewrite=None):
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        request = urllib.request.Request(MOTO_URL + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, reply, reply_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, reply, reply_headers = error.code, error.read(), error.headers
        if rewrite and status == 200:
            reply = rewrite(reply)
        self.send_response(status)
        for key in ("Content-Type", "x-amzn-RequestId"):
            if reply_headers.get(key):
                self.send_header(key, reply_headers[key])
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        return reply

    def reply_json(self, reply):
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def reply_error(self, code, message):
        reply = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", LISTEN_PORT), Recorder).serve_forever()
