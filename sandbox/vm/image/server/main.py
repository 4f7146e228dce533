"""Nexy voice-assistant server: the sandbox's stand-in (stdlib only).

It fails the way the real server fails in each runbook fault, for real:
- a requirement in server/requirements.txt that the venv does not satisfy: ImportError /
  ModuleNotFoundError traceback, exit 1                                          (runbook 3)
- config.env not readable by the service user: PermissionError traceback, exit 1  (6.1)
- GEMINI_API_KEY missing / placeholder: error, exit 1                             (0.1)
- GEMINI_API_KEY expired or invalid (judged by the sandbox's Gemini, var/lib/sandbox/gemini.json):
  google.genai.errors.ClientError + "Не удалось инициализировать TextProcessor", exit 1 (6, 6.3)
Otherwise it serves /health (health port) and /updates/health (updates port) on 127.0.0.1,
reading VERSION and the updates manifest on every request. The ports come from the sandbox's
var/lib/sandbox/vm.json, never from config.env.
"""
import errno
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent
VM_ROOT = Path(os.environ.get("NEXY_VM_ROOT") or APP_DIR.parents[2])
SANDBOX = VM_ROOT / "var/lib/sandbox"
CONFIG = APP_DIR / "config.env"
PLACEHOLDERS = {"", "YOUR_GEMINI_API_KEY_HERE", "your_api_key_here", "your-gemini-api-key", "changeme",
                "CHANGEME", "PLACEHOLDER", "placeholder", "xxx", "XXX", "<GEMINI_API_KEY>"}
IMPORT_NAMES = {"google-genai": "google.genai", "google-generativeai": "google.generativeai",
                "python-dotenv": "dotenv", "grpcio": "grpc", "grpcio-tools": "grpc_tools",
                "grpcio-status": "grpc_status", "protobuf": "google.protobuf",
                "langchain-google-genai": "langchain_google_genai", "langchain-core": "langchain_core",
                "pydantic": "pydantic", "aiohttp": "aiohttp", "langchain": "langchain"}

logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
log = logging.getLogger("main")


# ------------------------------------------------------------------ sandbox glue: VM permissions

def _table(name):
    try:
        return [line.split(":") for line in (VM_ROOT / "etc" / name).read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def _readable_by(path, user):
    """Judge a read as the VM user `user` (ownership overlay + real mode bits), as the VM would."""
    mode = os.stat(path).st_mode & 0o777
    if user == "root":
        return True
    try:
        overlay = json.loads((SANDBOX / "ownership.json").read_text())
    except (FileNotFoundError, ValueError):
        overlay = {}
    rel = os.path.relpath(os.path.abspath(path), VM_ROOT)
    users = {p[0]: p for p in _table("passwd") if len(p) >= 7}
    groups = {p[0]: p for p in _table("group") if len(p) >= 4}
    gid_name = {p[2]: p[0] for p in groups.values()}
    if rel in overlay:
        owner, group = overlay[rel]
    elif rel.startswith("home/") and rel.split("/")[1] in users:
        owner = rel.split("/")[1]
        group = gid_name.get(users[owner][3], owner)
    else:
        owner, group = "root", "root"
    member_of = {name for name, p in groups.items() if user in p[3].split(",")}
    if user in users:
        member_of.add(gid_name.get(users[user][3], ""))
    if owner == user:
        bits = mode >> 6
    elif group in member_of:
        bits = mode >> 3
    else:
        bits = mode
    return bool(bits & 4)


def open_config(path):
    user = os.environ.get("NEXY_VM_AS_USER") or "root"
    if not _readable_by(path, user):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    return open(path, encoding="utf-8")


# ------------------------------------------------------------------ startup checks

def _version_tuple(text):
    return tuple(int(x) if x.isdigit() else 0 for x in re.findall(r"\d+|[A-Za-z]+", text))


def _satisfies(version, spec):
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.match(r"(==|!=|>=|<=|~=|>|<)\s*(.+)", clause)
        if not match:
            continue
        op, want = match.groups()
        have, need = _version_tuple(version), _version_tuple(want)
        ok = {"==": have == need, "!=": have != need, ">=": have >= need, "<=": have <= need,
              ">": have > need, "<": have < need,
              "~=": have >= need and have[: len(need) - 1] == need[: len(need) - 1]}[op]
        if not ok:
            return False
    return True


def check_imports():
    """What importing the server's dependencies would do with the venv's installed versions."""
    installed = {}
    packages = Path(sys.prefix) / "sandbox-packages.txt"
    if not packages.exists():
        packages = APP_DIR / "venv" / "sandbox-packages.txt"
    if packages.exists():
        for line in packages.read_text().splitlines():
            if "==" in line:
                name, version = line.strip().split("==", 1)
                installed[name.lower().replace("_", "-")] = version
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    problems = []
    for raw in (APP_DIR / "server" / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", line)
        name, spec = match.group(1).lower().replace("_", "-"), match.group(2)
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        if name not in installed:
            problems.append((1, ModuleNotFoundError(f"No module named '{module}'", name=module)))
        elif not _satisfies(installed[name], spec):
            if name == "protobuf":  # the generated *_pb2.py modules are imported first
                problems.append((0, ImportError(f"cannot import name 'runtime_version' from 'google.protobuf' "
                                                f"({site}/google/protobuf/__init__.py)")))
            elif name.startswith("grpcio"):
                problems.append((2, RuntimeError(
                    f"The grpc package installed is at version {installed[name]}, but the generated code in "
                    f"streaming_pb2_grpc.py depends on {name}{spec}. Please upgrade your grpc module to {name}{spec}")))
            else:
                problems.append((3, ImportError(f"{name} {installed[name]} is installed but {name}{spec} is required")))
    if problems:
        raise min(problems, key=lambda p: p[0])[1]


def read_config():
    values = {}
    with open_config(CONFIG) as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def _gemini():
    try:
        return json.loads((SANDBOX / "gemini.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def key_expired(api_key):
    return api_key in set(_gemini().get("expired_keys", []))


def log_client_error(api_key, message):
    """What google-genai logs for a refused call: its error body and the request URL, key included
    (as real client errors do: what the bot must redact)."""
    body = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT",
                      "details": [{"reason": "API_KEY_INVALID"}]}}
    url = f"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent?key={api_key}"
    logging.getLogger("text_processor").error("google.genai.errors.ClientError: 400 INVALID_ARGUMENT. %s (POST %s)",
                                              body, url)


def init_text_processor(api_key):
    """The Gemini client's first call (LangChain's ChatGoogleGenerativeAI), against the sandbox's Gemini."""
    gemini = _gemini()
    if key_expired(api_key):  # runbook 6 and 6.3: the client's API_KEY_INVALID, then the TextProcessor
        log_client_error(api_key, "API key expired. Please renew the API key.")
    elif not re.fullmatch(r"AIza[0-9A-Za-z_\-]{35}", api_key) or api_key in set(gemini.get("revoked_keys", [])):
        # runbook 6.3 alone: LangChain's own error, no API_KEY_INVALID reason in the log
        logging.getLogger("langchain_google_genai").error(
            "langchain_google_genai.chat_models.ChatGoogleGenerativeAIError: Invalid argument provided to Gemini: "
            "400 API key not valid. Please pass a valid API key.")
    else:
        logging.getLogger("text_processor").info("✅ TextProcessor initialized (model %s)",
                                                 gemini.get("model", "gemini-2.5-flash"))
        return True
    logging.getLogger("grpc_server").error("Не удалось инициализировать TextProcessor")
    logging.getLogger("grpc_server").error("gRPC service initialization failed")
    return False


# ------------------------------------------------------------------ health endpoints

def health_body(service):
    version = (APP_DIR / "VERSION").read_text(encoding="utf-8").strip()
    manifest = json.loads((APP_DIR / "server/updates/manifests/manifest.json").read_text(encoding="utf-8"))
    return {"status": "ok", "service": service, "version": version,
            "latest_version": manifest.get("version"), "latest_build": manifest.get("build")}


def make_handler(routes):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                return self._send(404, {"detail": "Not Found"})
            try:
                body = route()
            except (OSError, ValueError) as exc:
                return self._send(500, {"status": "error", "detail": str(exc)})
            self._send(200, body)

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


def serve(port, routes):
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(routes))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    version = (APP_DIR / "VERSION").read_text(encoding="utf-8").strip()
    log.info("🚀 Starting Nexy voice-assistant server %s", version)
    check_imports()
    config = read_config()
    api_key = config.get("GEMINI_API_KEY")
    if api_key is None:
        log.error("❌ GEMINI_API_KEY is missing in %s", CONFIG)
        return 1
    if api_key in PLACEHOLDERS:
        log.error("❌ GEMINI_API_KEY is empty or placeholder in %s", CONFIG)
        return 1
    if not init_text_processor(api_key):
        return 1
    ports = json.loads((SANDBOX / "vm.json").read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    servers = [
        serve(ports["health_port"], {"/health": lambda: health_body("voice-assistant"),
                                     "/status": lambda: health_body("voice-assistant")}),
        serve(ports["updates_port"], {"/updates/health": lambda: health_body("updates"),
                                      "/health": lambda: health_body("updates")}),
    ]
    log.info("✅ gRPC server started on port %s", config.get("GRPC_PORT", "50051"))
    log.info("✅ Health server listening on 127.0.0.1:%s (/health)", ports["health_port"])
    log.info("✅ Updates server listening on 127.0.0.1:%s (/updates/health)", ports["updates_port"])
    refused_at = 0.0
    while not stop.wait(0.05):
        # the key may expire while the service runs (runbook 6 alone): each call is refused
        now = time.monotonic()
        if now - refused_at > 5 and key_expired(api_key):
            log_client_error(api_key, "API key expired. Please renew the API key.")
            refused_at = now
    log.info("🛑 Received SIGTERM, shutting down")
    for server in servers:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
