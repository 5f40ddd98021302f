#!/usr/bin/env bash
# What the machine must have for `make demo` (demo) or `make test` (test), checked in well under a
# second before anything is built; everything else comes from PyPI and Maven Central. With
# --install, what is missing is installed with apt-get (what .ci/run does on a fresh machine), so
# README, make and CI name one list.
#   usage: scripts/prerequisites.sh demo|test [--install]
# Bash builtins only besides the tools checked: it must work on a PATH that lacks them.
set -uo pipefail

target=${1:?usage: $0 demo|test [--install]}
python=${PYTHON:-python3}
missing=() packages=()

lacks() {  # name, Debian package(s)
  missing+=("$1") && packages+=("$2")
}

if ! command -v "$python" >/dev/null 2>&1 || ! "$python" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  lacks "Python 3.11 with venv ($python)" "python3.11 python3.11-venv"
fi
java_version=$(java -version 2>&1) || java_version=""
if [[ ! $java_version =~ version\ \"(1[7-9]|2[0-9]) ]]; then
  lacks "a Java 17 runtime (java)" "openjdk-17-jre-headless"
fi
if [[ $target == test ]]; then
  # tests/cluster compiles its MiniDFSCluster launcher (javac) and fetches Hadoop's minicluster
  # jar (mvn); tests/etl renders report.html in a real headless browser (chromium).
  command -v javac >/dev/null 2>&1 || lacks "a Java 17 compiler (javac)" "openjdk-17-jdk-headless"
  command -v mvn >/dev/null 2>&1 || lacks "Maven (mvn)" "maven"
  command -v chromium >/dev/null 2>&1 || lacks "Chromium (chromium)" "chromium"
fi

((${#missing[@]} == 0)) && exit 0
if [[ ${2:-} == --install ]]; then
  apt-get update -qq && apt-get install -y -qq ${packages[*]} && exit 0
  exit 1
fi
list=$(printf '%s, ' "${missing[@]}")
echo "make $target needs ${list%, }, which this machine lacks: install with \`sudo apt-get install -y ${packages[*]}\` (Debian/Ubuntu), then rerun" >&2
exit 1
