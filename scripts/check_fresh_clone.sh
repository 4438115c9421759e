#!/usr/bin/env bash
# Release check: what a new user gets. Clones this repository's committed HEAD into a temporary
# folder and runs the README's two commands there, each as the very first command on its own fresh
# clone: the run command (the embedded SmolLM2 model answering offline) and the test command (the
# whole suite). uv gets a private cache that starts empty, and the environment holds no API keys and
# no uv settings. Fails if either command fails. It compiles llama-cpp-python, so it takes as long
# as a new user's first run (about 10 minutes on 2 cores); it is not part of .ci/run.
#
#   bash scripts/check_fresh_clone.sh            # uncommitted changes are not checked
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_COMMAND='uv run optillm run moa "What is 12 + 7?"'
TEST_COMMAND='uv run pytest'
LOCAL_NOTICE='no provider configured; running on the embedded local model'

work=""
keep_logs=0
fail() {
    echo "check_fresh_clone: FAILED: $*" >&2
    keep_logs=1
    exit 1
}
# On success everything goes; on failure the commands' output stays (the clones and cache go).
clean_up() {
    [ -n "$work" ] || return 0
    if [ "$keep_logs" = 1 ]; then
        rm -rf "$work/clone-run" "$work/clone-test" "$work/uv-cache" "$work/home"
        echo "check_fresh_clone: the commands' output is kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap clean_up EXIT

# The commands checked are the README's own: each must be a line of it (an optional comment after).
for command in "$RUN_COMMAND" "$TEST_COMMAND"; do
    grep -qF -x -e "$command" <(sed -E 's/ +#.*$//' README.md) || fail "README.md no longer shows: $command"
done

if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet uv # as the README says, where uv is missing
fi

commit=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain)" ]; then
    echo "check_fresh_clone: note: uncommitted changes are not part of the check (it clones $commit)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/optillm-fresh-clone.XXXXXX")
mkdir "$work/home"

# A new user's environment: no API keys or other secrets, no uv settings, no active virtualenv, an
# empty home; network settings (proxies, CA certificates) and PATH stay so that PyPI is reachable.
clean_env=(env)
for name in $(compgen -e); do
    case "$name" in
    *API_KEY* | *_KEY | *TOKEN* | *SECRET* | *PASSWORD* | UV_* | VIRTUAL_ENV | CONDA_* | PYTHONPATH | PYTHONHOME | XDG_*)
        clean_env+=(-u "$name")
        ;;
    esac
done
clean_env+=(HOME="$work/home" UV_CACHE_DIR="$work/uv-cache")

fresh_clone() {
    git clone --quiet --no-checkout "$PWD" "$work/$1"
    git -C "$work/$1" checkout --quiet --detach "$commit"
}

# run NAME COMMAND: COMMAND as the first command in a fresh clone NAME; its stdout and stderr go to
# $work/NAME.out and $work/NAME.err.
run() {
    local name=$1 command=$2 start status
    fresh_clone "$name"
    echo "check_fresh_clone: [$name] \$ $command"
    start=$SECONDS
    set +e
    (cd "$work/$name" && "${clean_env[@]}" bash -c "$command") >"$work/$name.out" 2>"$work/$name.err"
    status=$?
    set -e
    echo "check_fresh_clone: [$name] exit $status after $((SECONDS - start)) s"
    if [ "$status" -ne 0 ]; then
        tail -n 30 "$work/$name.err" "$work/$name.out" >&2
        fail "$command (exit $status)"
    fi
}

# The lines of uv's report worth keeping: not the workspace packages it builds nor the list of
# packages it installs.
uv_summary() {
    grep -E '^ *(Resolved|Installed|Building llama|Built llama)' "$1" | sed 's/^ */    uv: /' || true
}

echo "check_fresh_clone: commit $commit, uv $(uv --version | cut -d' ' -f2), cache $work/uv-cache (empty)"
run clone-run "$RUN_COMMAND"
uv_summary "$work/clone-run.err"
grep -qF "$LOCAL_NOTICE" "$work/clone-run.err" || fail "the run did not announce the embedded model"
echo "    answer: $(tr '\n' ' ' <"$work/clone-run.out")"

run clone-test "$TEST_COMMAND"
uv_summary "$work/clone-test.err"
echo "    pytest: $(tail -n 1 "$work/clone-test.out")"
echo "check_fresh_clone: OK: both README commands work as the first command on a fresh clone"
