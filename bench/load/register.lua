-- wrk script: POST /v1/users with a fresh username per request (unique per
-- wrk thread and per run).
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local run = os.time()
request = function()
  counter = counter + 1
  local body = string.format('{"username":"u%d_%d_%d","password":"password12345"}', run, tid, counter)
  return wrk.format("POST", "/v1/users", {["Content-Type"] = "application/json"}, body)
end
