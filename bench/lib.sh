# Shared by the bench scripts (sourced): $DIR for scratch files and $RUNS must be set.

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() { # name, command...: prints "name median_seconds max_rss_kib" over $RUNS runs
  local name=$1; shift
  local times=() rss=0
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" > /dev/null 2> "$DIR/err.txt" || { cat "$DIR/err.txt" >&2; exit 1; }
    read -r t m < "$DIR/time.txt"
    times+=("$t"); [ "$m" -gt "$rss" ] && rss=$m
  done
  echo "$name $(printf '%s\n' "${times[@]}" | median) $rss"
}

lifetimes_python() { # venv: creates it once with lifetimes 0.11.3 (bench/requirements-clv.txt),
  # prints its python. The pinned wheels need CPython 3.8-3.11: $LIFETIMES_PYTHON, else the first
  # of python3.11, python3.10, python3.9, python3.8, python3 that is one.
  local venv=$1 py=${LIFETIMES_PYTHON:-}
  if [ ! -x "$venv/bin/python" ]; then
    if [ -z "$py" ]; then
      for c in python3.11 python3.10 python3.9 python3.8 python3; do
        if command -v "$c" > /dev/null &&
          "$c" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 11))'; then
          py=$c; break
        fi
      done
    fi
    [ -n "$py" ] || {
      echo "lifetimes' pinned wheels need CPython 3.8-3.11; set LIFETIMES_PYTHON (e.g. from 'uv python install 3.11')" >&2
      return 1
    }
    "$py" -m venv "$venv" >&2
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: -r bench/requirements-clv.txt >&2
  echo "$venv/bin/python"
}
