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
