#!/usr/bin/env python3
"""A small ClickHouse-HTTP-interface-compatible test server backed by chDB.

    python shim.py PORT DATA_PATH [--user U] [--password P] [-v]

PORT 0 picks a free port. Once listening, one line is printed on stdout:
    listening on 127.0.0.1:PORT
Serves (like clickhouse-server's HTTP interface, default handlers only):
  GET/HEAD /ping, GET / without query        -> 200 "Ok.\n"
  GET /?query=SQL                             -> read-only (readonly=2), as in ClickHouse
  POST /?query=SQL  + body                    -> query text = query + "\n" + body (ClickHouse rule)
  POST /            + body                    -> body is the whole query
URL parameters: database, default_format, query_id, user, password, param_<name>
(query parameters), session_id/close_session, and every other name is applied
as a setting (unknown -> UNKNOWN_SETTING, as in ClickHouse). Headers:
X-ClickHouse-User/-Key, Basic auth, X-ClickHouse-Database, X-ClickHouse-Format,
X-ClickHouse-Query-Id. Request body may be gzip/deflate (Content-Encoding) and
chunked. Response gzip/deflate when enable_http_compression=1.
Not supported: ClickHouse native compression (compress=1/decompress=1 -> 501),
multipart external tables, progress headers, streaming (results are buffered).
"""
import argparse
import base64
import json
import re
import signal
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb  # noqa: F401  (loads the engine, sets chdb.engine_version)
from chdb import _chdb

ENGINE_VERSION = chdb.engine_version

# Error name -> HTTP status, as in ClickHouse src/Server/HTTP/exceptionCodeToHTTPStatus.cpp
_S400 = """BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE
CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER
CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6
CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN ILLEGAL_COLUMN
UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST TOO_BIG_AST
UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"""
_S404 = """UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE
UNKNOWN_DATABASE UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION
UNKNOWN_FORMAT UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE"""
STATUS_BY_NAME = {n: 400 for n in _S400.split()}
STATUS_BY_NAME.update({n: 404 for n in _S404.split()})
STATUS_BY_NAME.update({
    "REQUIRED_PASSWORD": 401,
    "UNKNOWN_USER": 403, "WRONG_PASSWORD": 403, "AUTHENTICATION_FAILED": 403,
    "SET_NON_GRANTED_ROLE": 403, "ACCESS_DENIED": 403,
    "QUERY_IS_TOO_LARGE": 413, "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503, "CANNOT_OPEN_FILE": 503, "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411, "TIMEOUT_EXCEEDED": 408, "UNSUPPORTED_MEDIA_TYPE": 415,
})

RESERVED = {"query", "database", "default_format", "compress", "decompress", "user", "password",
            "quota_key", "query_id", "stacktrace", "buffer_size", "wait_end_of_query",
            "session_id", "session_timeout", "session_check", "client_protocol_version",
            "close_session", "role"}

CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values", "tsv": "text/tab-separated-values",
    "tabseparatedwithnames": "text/tab-separated-values", "tsvwithnames": "text/tab-separated-values",
    "tabseparatedwithnamesandtypes": "text/tab-separated-values",
    "tsvwithnamesandtypes": "text/tab-separated-values",
    "csv": "text/csv", "csvwithnames": "text/csv", "csvwithnamesandtypes": "text/csv",
    "json": "application/json", "jsoncompact": "application/json",
    "jsoneachrow": "application/x-ndjson", "jsoncompacteachrow": "application/x-ndjson",
    "jsonstrings": "application/json", "jsonlines": "application/x-ndjson", "ndjson": "application/x-ndjson",
}

CODE_RE = re.compile(r"Code: (\d+)\.")
NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
FORMAT_RE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)


class CHError(Exception):
    def __init__(self, code, name, text):
        super().__init__(text)
        self.code, self.name, self.text = code, name, text


def sql_literal(v):
    # always a string literal: ClickHouse parses a setting from its string form, as for URL settings
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_ident(v):
    return "`" + v.replace("\\", "\\\\").replace("`", "\\`") + "`"


class Engine:
    """One embedded chDB engine; every query runs under one lock."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.base = _chdb.connect(path)  # keeps the engine alive
        self.sessions = {}

    def run(self, sql, fmt, settings, database, params, readonly, session_id, close_session):
        with self.lock:
            if session_id:
                conn = self.sessions.get(session_id)
                if conn is None:
                    conn = self.sessions[session_id] = _chdb.connect(self.path)
            else:
                conn = _chdb.connect(self.path)
            try:
                for k, v in settings:
                    conn.query(f"SET {k} = {sql_literal(v)}", "TabSeparated")
                if database:
                    conn.query(f"USE {sql_ident(database)}", "TabSeparated")
                if readonly:
                    conn.query("SET readonly = 2", "TabSeparated")
                t0 = time.monotonic()
                res = conn.query(sql, fmt, params=params)
                if res.has_error():
                    raise RuntimeError(res.error_message())
                elapsed = time.monotonic() - t0
                body = res.bytes()
                summary = {
                    "read_rows": str(res.rows_read()), "read_bytes": str(res.bytes_read()),
                    "written_rows": str(res.rows_written()), "written_bytes": str(res.bytes_written()),
                    "total_rows_to_read": str(res.rows_read()),
                    "result_rows": "0", "result_bytes": str(len(body)),
                    "elapsed_ns": str(int(elapsed * 1e9)),
                }
                return body, summary
            finally:
                if not session_id:
                    conn.close()
                elif close_session:
                    self.sessions.pop(session_id, None)
                    conn.close()

    def close(self):
        with self.lock:
            for c in self.sessions.values():
                c.close()
            self.sessions.clear()
            self.base.close()


def to_ch_error(exc):
    text = str(exc).strip()
    m = CODE_RE.search(text)
    code = int(m.group(1)) if m else 1001
    n = NAME_RE.search(text)
    name = n.group(1) if n else "STD_EXCEPTION"
    if not m:
        text = f"Code: {code}. DB::Exception: {text}. ({name})"
    return CHError(code, name, text)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chdb-shim"
    engine: Engine = None
    user = "default"
    password = ""
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("shim: " + (fmt % args) + "\n")

    # ---- plumbing ----
    def _send(self, status, body, headers=(), ctype="text/plain; charset=UTF-8"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("X-ClickHouse-Server-Display-Name", "chdb-shim")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, err: CHError):
        text = err.text
        if "(version " not in text:
            text += f" (version {ENGINE_VERSION} (official build))"
        status = STATUS_BY_NAME.get(err.name, 500)
        hdrs = [("X-ClickHouse-Exception-Code", str(err.code))]
        if status == 401:
            hdrs.append(("WWW-Authenticate", 'Basic realm="ClickHouse server HTTP API"'))
        self._send(status, text + "\n", hdrs)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = self.headers.get("Content-Length")
        if n is None:
            if self.command == "POST":
                raise CHError(381, "HTTP_LENGTH_REQUIRED", "Code: 381. DB::Exception: The Transfer-Encoding "
                              "is not chunked and there is no Content-Length header for POST request. "
                              "(HTTP_LENGTH_REQUIRED)")
            return b""
        return self.rfile.read(int(n))

    def _authenticate(self, params):
        h_user = self.headers.get("X-ClickHouse-User", "")
        h_key = self.headers.get("X-ClickHouse-Key", "")
        auth = self.headers.get("Authorization", "")
        p_has = "user" in params or "password" in params
        if h_user or h_key:
            if auth or p_has:
                raise CHError(516, "AUTHENTICATION_FAILED", "Code: 516. DB::Exception: Invalid authentication: "
                              "it is not allowed to use X-ClickHouse HTTP headers and other authentication "
                              "methods simultaneously. (AUTHENTICATION_FAILED)")
            user, pw = h_user or "default", h_key
        elif auth:
            if p_has:
                raise CHError(516, "AUTHENTICATION_FAILED", "Code: 516. DB::Exception: Invalid authentication: "
                              "it is not allowed to use Authorization HTTP header and authentication via "
                              "parameters simultaneously. (AUTHENTICATION_FAILED)")
            scheme, _, val = auth.partition(" ")
            if scheme.lower() != "basic":
                raise CHError(516, "AUTHENTICATION_FAILED",
                              "Code: 516. DB::Exception: Invalid authentication: '" + scheme +
                              "' HTTP Authorization scheme is not supported. (AUTHENTICATION_FAILED)")
            try:
                user, _, pw = base64.b64decode(val).decode().partition(":")
            except Exception:
                raise CHError(516, "AUTHENTICATION_FAILED",
                              "Code: 516. DB::Exception: Invalid Basic credentials. (AUTHENTICATION_FAILED)")
        else:
            user, pw = params.get("user", "default"), params.get("password", "")
        if user != self.user or pw != self.password:
            raise CHError(516, "AUTHENTICATION_FAILED",
                          f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, "
                          "or there is no user with such name. (AUTHENTICATION_FAILED)")

    # ---- methods ----
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def _handle(self):
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except CHError as e:
            self.close_connection = True
            return self._send_error(e)
        if url.path in ("/ping",) and self.command in ("GET", "HEAD"):
            return self._send(200, "Ok.\n")
        if url.path != "/":
            return self._send(404, f"There is no handle {url.path}\n\nUse / or /ping for health checks.\n")
        pairs = parse_qsl(url.query, keep_blank_values=True)
        params = dict(pairs)
        if self.command in ("GET", "HEAD") and "query" not in params and not body:
            return self._send(200, "Ok.\n")
        try:
            self._authenticate(params)
            enc = self.headers.get("Content-Encoding", "").lower()
            if enc in ("gzip", "x-gzip"):
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            elif enc == "deflate":
                body = zlib.decompress(body)
            elif enc not in ("", "identity"):
                raise CHError(48, "NOT_IMPLEMENTED", f"Code: 48. DB::Exception: chdb-shim: Content-Encoding "
                              f"'{enc}' is not supported (use gzip/deflate or none). (NOT_IMPLEMENTED)")
            for flag in ("compress", "decompress"):
                if params.get(flag, "0") not in ("0", "false", ""):
                    raise CHError(48, "NOT_IMPLEMENTED", f"Code: 48. DB::Exception: chdb-shim: '{flag}=1' "
                                  "(ClickHouse native compression) is not supported. (NOT_IMPLEMENTED)")
            q = params.get("query", "")
            sql = (q + "\n" if q else "") + body.decode("utf-8", "surrogateescape")
            if not sql.strip():
                raise CHError(62, "SYNTAX_ERROR", "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
            database = self.headers.get("X-ClickHouse-Database") or params.get("database", "")
            fmt = self.headers.get("X-ClickHouse-Format") or params.get("default_format") or "TabSeparated"
            qparams, settings = {}, []
            for k, v in pairs:
                if k.startswith("param_"):
                    qparams[k[6:]] = v
                elif k and k not in RESERVED:
                    settings.append((k, v))
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", "".join(k for k, _ in settings) or "x"):
                raise CHError(115, "UNKNOWN_SETTING", "Code: 115. DB::Exception: Bad setting name. (UNKNOWN_SETTING)")
            readonly = self.command in ("GET", "HEAD") and "readonly" not in params
            query_id = params.get("query_id") or self.headers.get("X-ClickHouse-Query-Id") or str(uuid.uuid4())
            out, summary = self.engine.run(sql, fmt, settings, database, qparams, readonly,
                                           params.get("session_id", ""), params.get("close_session") in ("1", "true"))
        except CHError as e:
            return self._send_error(e)
        except Exception as e:  # engine errors come as RuntimeError("Code: N. DB::Exception: ...")
            return self._send_error(to_ch_error(e))

        m = FORMAT_RE.search(sql) if not re.match(r"\s*INSERT\b", sql, re.I) else None
        out_fmt = m.group(1) if m else fmt
        headers = [("X-ClickHouse-Query-Id", query_id), ("X-ClickHouse-Format", out_fmt),
                   ("X-ClickHouse-Timezone", "UTC"),
                   ("X-ClickHouse-Summary", json.dumps(summary, separators=(",", ":")))]
        ctype = CONTENT_TYPES.get(out_fmt.lower(), "text/plain") + "; charset=UTF-8"
        if params.get("enable_http_compression") in ("1", "true"):
            ae = self.headers.get("Accept-Encoding", "").lower()
            if "gzip" in ae:
                co = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
                out = co.compress(out) + co.flush()
                headers.append(("Content-Encoding", "gzip"))
            elif "deflate" in ae:
                out = zlib.compress(out)
                headers.append(("Content-Encoding", "deflate"))
        self._send(200, out, headers, ctype)


def main():
    ap = argparse.ArgumentParser(description="ClickHouse HTTP interface shim over chDB")
    ap.add_argument("port", type=int)
    ap.add_argument("data_path")
    ap.add_argument("--user", default="default")
    ap.add_argument("--password", default="")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    Handler.engine = Engine(a.data_path)
    Handler.user, Handler.password, Handler.verbose = a.user, a.password, a.verbose
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on 127.0.0.1:{srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
        Handler.engine.close()


if __name__ == "__main__":
    main()
