#!/usr/bin/env bash
# Quick start 1: install, migrate, load demo data, train, and serve on http://127.0.0.1:8081.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/prepare.sh
# The demo speaks plain HTTP on 127.0.0.1, where a browser would not send a Secure cookie back:
# switch Secure off for it (only here; every other start keeps it on). Never behind a public
# address: see SECURITY.md.
export SESSION_COOKIE_SECURE=${SESSION_COOKIE_SECURE:-0}
# The demo's people are generated: their pages and the people search are open to anyone.
# Production keeps them behind the admin login (PUBLIC_PEOPLE_PAGES, SECURITY.md).
export PUBLIC_PEOPLE_PAGES=${PUBLIC_PEOPLE_PAGES:-1}
# The README's curl works without an API key in the demo; such calls are served but never A/B
# evidence. Everywhere else the API needs a key (`flask --app wsgi api-key create NAME`).
export ALLOW_ANONYMOUS_API=${ALLOW_ANONYMOUS_API:-1}
exec bash scripts/serve.sh
