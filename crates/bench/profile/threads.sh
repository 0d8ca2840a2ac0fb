#!/bin/bash
# Per-thread CPU of a process over an interval: threads.sh PID SECONDS
# Prints "ticks(1/100 s)  thread-name" per thread name, summed, busiest first.
# Reads /proc only; bounded by SECONDS.
pid=$1; secs=${2:-5}
snap() {
  for t in /proc/$pid/task/*; do
    [ -r "$t/stat" ] || continue
    s=$(cat "$t/stat" 2>/dev/null) || continue
    name=$(cat "$t/comm" 2>/dev/null)
    rest=${s##*) }
    set -- $rest
    echo "$(basename $t) ${12} ${13} $name"
  done
}
a=$(snap); sleep "$secs"; b=$(snap)
# join: tid utime0 stime0 name0 utime1 stime1 name1
join <(echo "$a" | sort) <(echo "$b" | sort) | awk '{sum[$4]+=($5+$6)-($2+$3)} END {for (n in sum) printf "%6d  %s\n", sum[n], n}' | sort -rn
