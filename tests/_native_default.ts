// Copyright 2026 the denio authors. MIT license.
// Imported first by native_backend_test.ts: from here on, createServer and
// createConnection without a `backend` option run on the native reactor
// (as "auto": native where it can run, Deno's API for TLS). The reactor's
// two process-lifetime descriptors are opened now, so the suites' own
// descriptor accounting (before/after a load) sees the same set.

import { setDefaultBackend } from "../transports/_backend.ts";
import { openReactor } from "../transports/_native_io.ts";

setDefaultBackend("auto");
openReactor();
