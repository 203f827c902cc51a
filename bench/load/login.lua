-- wrk script: POST /v1/sessions for one existing user (LOAD_USER).
local user = os.getenv("LOAD_USER") or "loaduser"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"username":"%s","password":"password12345"}', user)
