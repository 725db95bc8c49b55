#!/bin/sh
# smallfs.sh ACTION DIR STATE [SIZE]
# A small file system for DIR (see diskfault.SmallDisk): an ext4 image
# STATE/image, loop-mounted at STATE/mnt, whose subdirectory data is
# bind-mounted over DIR; the filler files live beside data, out of the
# DB's sight. Actions:
#   mount SIZE  make and mount it (once; DIR's content moves in the first time)
#   fill        take every free block; prints "filled BYTES avail BYTES"
#   free        remove the filler; prints "avail BYTES"
#   status      prints "mounted 0|1 filled BYTES avail BYTES size BYTES"
#   unmount     copy the data back into a plain DIR, remove the file system
# Exit 3: the file system is not mounted (fill); 4: DIR is busy (unmount).
set -u
act=$1 dir=$2 st=$3 size=${4:-}
mnt=$st/mnt
# ours: a mount at DIR is our bind of STATE/mnt/data (another mount, as
# lazyfs, may cover it). top: DIR's topmost mount is that bind.
# mountinfo fields: 3 device, 4 root in the file system, 5 mount point.
ours() { binds any; }
top() { binds top; }
binds() {
  mountpoint -q "$mnt" || return 1
  awk -v d="$(mountpoint -d "$mnt")" -v p="$dir" -v want="$1" '
    $5 == p { last = ($3 == d && $4 == "/data"); if (last) found = 1 }
    END { exit !(want == "any" ? found : last) }' /proc/self/mountinfo
}
avail() { df --output=avail -B1 "$mnt" | tail -n 1 | tr -d ' '; }
filled() {
  n=0
  for f in "$mnt/fill" "$mnt/fill2"; do
    [ -f "$f" ] && n=$((n + $(stat -c %s "$f")))
  done
  echo "$n"
}
case $act in
mount)
  if ours; then exit 0; fi
  mkdir -p "$mnt" "$dir" || exit 1
  if [ ! -f "$st/image" ]; then
    rm -f "$st/image.tmp"
    truncate -s "$size" "$st/image.tmp" || exit 1
    # -m 0: root (the DB may run as root) gets no reserved blocks; the
    # disk is full for everyone.
    mkfs.ext4 -q -F -m 0 -E lazy_itable_init=0,lazy_journal_init=0 "$st/image.tmp" >&2 || exit 1
    mv "$st/image.tmp" "$st/image"
  fi
  mountpoint -q "$mnt" || mount -o loop "$st/image" "$mnt" || exit 1
  if [ ! -d "$mnt/data" ]; then
    mkdir "$mnt/data.tmp" && cp -a "$dir/." "$mnt/data.tmp/" && mv "$mnt/data.tmp" "$mnt/data" || exit 1
  fi
  mount --bind "$mnt/data" "$dir"
  ;;
fill)
  ours || { echo "no small file system at $dir" >&2; exit 3; }
  a=$(avail)
  # fallocate takes the bulk at once; what its own metadata left free,
  # dd takes until ENOSPC.
  [ "$a" -gt 1048576 ] && fallocate -l $((a - 1048576)) "$mnt/fill" 2>/dev/null
  dd if=/dev/zero of="$mnt/fill2" bs=4096 2>/dev/null
  sync -f "$mnt"
  echo "filled $(filled) avail $(avail)"
  ;;
free)
  rm -f "$mnt/fill" "$mnt/fill2"
  if mountpoint -q "$mnt"; then sync -f "$mnt"; echo "avail $(avail)"; else echo "avail 0"; fi
  ;;
status)
  if ours; then
    echo "mounted 1 filled $(filled) avail $(avail) size $(stat -c %s "$st/image")"
  else
    echo "mounted 0 filled 0 avail 0 size 0"
  fi
  ;;
unmount)
  if mountpoint -q "$mnt"; then
    if ours && ! top; then echo "another file system is mounted over $dir" >&2; exit 4; fi
    while ours; do umount "$dir" || exit 4; done
    rm -f "$mnt/fill" "$mnt/fill2"
    if [ -d "$mnt/data" ]; then
      find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf {} + && cp -a "$mnt/data/." "$dir/" || exit 1
    fi
    umount "$mnt" || exit 4
  fi
  rm -rf "$st"
  ;;
*)
  echo "unknown action $act" >&2; exit 2
  ;;
esac
