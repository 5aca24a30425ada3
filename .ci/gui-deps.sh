#!/usr/bin/env bash
# The Debian packages the headless napari test needs (a virtual X server and Qt's xcb
# libraries). Installed only where missing, and only as root with apt-get; elsewhere the
# test skips itself and says why.
set -u
command -v xvfb-run >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: xvfb-run missing and cannot be installed here: the napari end-to-end test will skip"
  exit 0
fi
pkgs="xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4
libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0
libxcb-xinerama0 libxcb-xkb1 libfontconfig1 libdbus-1-3"
apt-get install -y -q $pkgs >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $pkgs >/dev/null 2>&1; } \
  || echo "note: could not install xvfb: the napari end-to-end test will skip"
exit 0
