#!/bin/sh
# A background worker for the example stack: processes a "job" every two seconds.
trap 'echo "worker: SIGTERM received, finishing"; exit 0' TERM
echo "worker started (talks to the api on ${API_URL:-nowhere})"
i=0
while true; do
  i=$((i + 1))
  echo "processed job $i"
  sleep 2 &
  wait $!
done
