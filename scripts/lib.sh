# Shared by the test scripts: the Python venv with moto and
# cfn-lint, and a single-threaded moto server on a free loopback port that is stopped on exit.
# Source it after setting `venv` and `requirements`; it defines ensure_venv and start_moto.

ensure_venv() {
    # The stamp covers the interpreter too: a venv built by another Python is
    # broken even when the requirements did not change.
    want_stamp="$( { cat "$requirements"; python3 --version; } | sha256sum | cut -d' ' -f1)"
    stamp_file="$venv/.tollgate-requirements.sha256"
    mkdir -p "$(dirname "$venv")"
    if command -v flock >/dev/null 2>&1; then
        # Two runs at once (e.g. two worktrees) must not pip-install into one venv together.
        exec 9>"$venv.lock"
        flock 9
    fi
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$want_stamp" ]; then
        echo "venv up to date"
    else
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
        # Written last, so an interrupted install is redone next time.
        echo "$want_stamp" >"$stamp_file"
    fi
    if command -v flock >/dev/null 2>&1; then
        exec 9>&-
    fi
}

start_moto() {
    moto_dir="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-moto.XXXXXX")"
    moto_pid=""

    stop_moto() {
        local rc=$?
        trap - EXIT INT TERM
        if [ -n "$moto_pid" ] && kill -0 "$moto_pid" 2>/dev/null; then
            kill -TERM "$moto_pid" 2>/dev/null || true
            # Give it 5 s to finish the request in hand, then insist.
            for _ in $(seq 50); do
                kill -0 "$moto_pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$moto_pid" 2>/dev/null || true
        fi
        if [ -n "$moto_pid" ]; then
            wait "$moto_pid" 2>/dev/null || true
        fi
        if [ "$rc" -ne 0 ] && [ -s "$moto_dir/moto.log" ]; then
            echo "---- last lines of the moto log ----" >&2
            tail -n 40 "$moto_dir/moto.log" >&2 || true
        fi
        rm -rf "$moto_dir"
        exit "$rc"
    }
    trap stop_moto EXIT
    # Turn Ctrl-C / kill into a normal exit so the EXIT trap stops moto.
    trap 'exit 130' INT
    trap 'exit 143' TERM

    "$venv/bin/python" scripts/moto_server.py --host 127.0.0.1 --port 0 \
        --port-file "$moto_dir/port" --quiet >"$moto_dir/moto.log" 2>&1 &
    moto_pid=$!

    # The port file appears only once the socket listens; poll for it (bounded)
    # and bail out early if moto died.
    moto_port=""
    for _ in $(seq 300); do
        if [ -s "$moto_dir/port" ]; then
            moto_port="$(cat "$moto_dir/port")"
            break
        fi
        if ! kill -0 "$moto_pid" 2>/dev/null; then
            echo "moto exited during start-up" >&2
            exit 1
        fi
        sleep 0.1
    done
    if [ -z "$moto_port" ]; then
        echo "moto did not start listening within 30 s" >&2
        exit 1
    fi
    # One real request, so a broken moto fails here rather than as a confusing test failure.
    "$venv/bin/python" - "$moto_port" <<'PY'
import sys, urllib.request, urllib.error
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json"
try:
    urllib.request.urlopen(url, timeout=20).read()
except urllib.error.HTTPError:
    pass  # any HTTP answer means it serves
PY
    echo "moto ready on port $moto_port (pid $moto_pid)"

    export TOLLGATE_MOTO_ENDPOINT="http://127.0.0.1:$moto_port"
    export TOLLGATE_REQUIRE_MOTO=1
    export AWS_ACCESS_KEY_ID=testing
    export AWS_SECRET_ACCESS_KEY=testing
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    # Keep the SDK away from the instance metadata service and any real profile.
    export AWS_EC2_METADATA_DISABLED=true
    unset AWS_PROFILE AWS_SESSION_TOKEN
}
