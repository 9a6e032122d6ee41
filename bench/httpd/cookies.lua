-- wrk script: every request carries one of the pre-created session cookies
-- (cookies.txt beside the script, one "sid=..." per line), round robin, so
-- the run measures existing sessions spread over the working set.
local cookies = {}
local next_index = 1

function init(args)
  local path = args[1] or "cookies.txt"
  for line in io.lines(path) do
    if #line > 0 then cookies[#cookies + 1] = line end
  end
  -- Threads start at different places in the list.
  next_index = (math.random(#cookies) or 1)
end

function request()
  local cookie = cookies[next_index]
  next_index = next_index % #cookies + 1
  return wrk.format("GET", wrk.path, { ["Cookie"] = cookie })
end
