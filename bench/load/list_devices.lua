-- wrk script: GET /v1/devices with a bearer token (LOAD_TOKEN), keep-alive.
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("LOAD_TOKEN") or "")
