-- fwsetup smoke test for Torch (Lua), Torch7: a linear model y = Xw + b trained with torch.Tensor
-- operations (the gradient written out) and optim.sgd, on generated data. Run by luajit:
--   luajit train_torch7.lua [--device cpu|cuda|mps|xpu] [--all-gpus] [--steps N] [--seed S]
-- The same contract as the Python smoke scripts (fwsetup/smoke/_harness.py): the last line of stdout is one
-- JSON object with "ok", framework, version, device, devices, steps, loss_before, loss_after, seconds,
-- import_seconds, seconds_total (or ok=false and "error"); exit 0 when ok, 1 when not. It fails when the
-- loss is not finite or does not fall. CPU only: Ubuntu 18.04 packages Torch7 without cutorch, so
-- --device cuda (and --all-gpus) fail with the reason. Needs torch and optim only (no nn, no th).

local function now()
  local ok, sys = pcall(require, "sys") -- lua-torch-sys (a dependency of xlua/optim): wall clock
  if ok and type(sys) == "table" and sys.clock then
    return sys.clock()
  end
  return os.clock()
end

local t_start = now()

local function parse(argv)
  local o = { device = "cpu", all_gpus = false, steps = 30, seed = 0 }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--device" then
      o.device = argv[i + 1]; i = i + 1
    elseif a == "--all-gpus" then
      o.all_gpus = true
    elseif a == "--steps" then
      o.steps = tonumber(argv[i + 1]); i = i + 1
    elseif a == "--seed" then
      o.seed = tonumber(argv[i + 1]); i = i + 1
    else
      io.stderr:write("train_torch7.lua: unknown argument " .. tostring(a) .. "\n")
      os.exit(2)
    end
    i = i + 1
  end
  if o.steps == nil or o.seed == nil or o.device == nil then
    io.stderr:write("train_torch7.lua: --steps and --seed take a number, --device a name\n")
    os.exit(2)
  end
  return o
end

-- JSON (the report line): strings, numbers, booleans; NaN and infinities as Python's json writes them.
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode(v)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "boolean" then return v and "true" or "false" end
  if t == "number" then
    if v ~= v then return "NaN" end
    if v == math.huge then return "Infinity" end
    if v == -math.huge then return "-Infinity" end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  return "null"
end

-- As the Python harness reports them: losses to 6 significant digits, times to the millisecond.
local function tidy(result)
  for _, k in ipairs({ "loss_before", "loss_after" }) do
    local v = result[k]
    if type(v) == "number" and v == v and math.abs(v) < math.huge then result[k] = tonumber(string.format("%.6g", v)) end
  end
  for _, k in ipairs({ "seconds", "import_seconds", "seconds_total" }) do
    if type(result[k]) == "number" then result[k] = math.floor(result[k] * 1000 + 0.5) / 1000 end
  end
end

local function emit(keys, result)
  tidy(result)
  local parts = {}
  for _, k in ipairs(keys) do
    if result[k] ~= nil then parts[#parts + 1] = quote(k) .. ": " .. encode(result[k]) end
  end
  io.stdout:write("\n{" .. table.concat(parts, ", ") .. "}\n")
  io.stdout:flush()
end

local KEYS = { "ok", "framework", "version", "package_version", "interpreter", "device_requested", "all_gpus",
  "device", "devices", "steps", "loss_before", "loss_after", "parameters", "optimizer", "seconds",
  "import_seconds", "seconds_total", "error" }

-- The Debian package's version (Torch7 itself has no version string): dpkg's status file.
local function package_version(name)
  local f = io.open("/var/lib/dpkg/status", "r")
  if not f then return nil end
  local found, version = false, nil
  for line in f:lines() do
    if line == "Package: " .. name then
      found = true
    elseif line == "" then
      if found then break end
    elseif found and line:sub(1, 9) == "Version: " then
      version = line:sub(10)
    end
  end
  f:close()
  return version
end

local function fail(msg)
  error({ reason = msg }, 0)
end

local function train(o, result)
  if o.all_gpus then fail("--all-gpus: Torch7 from Ubuntu 18.04 is CPU only (no cutorch packaged)") end
  if o.device ~= "cpu" then
    fail("--device " .. o.device .. ": Torch7 from Ubuntu 18.04 is CPU only (no cutorch packaged)")
  end
  local t0 = now()
  require("torch")
  local optim = require("optim")
  result.import_seconds = now() - t0
  result.version = "7"
  result.package_version = package_version("lua-torch-torch7")
  t0 = now()
  torch.setdefaulttensortype("torch.DoubleTensor")
  torch.manualSeed(7)
  local N, F = 64, 8
  local w_true = torch.randn(F, 1)
  torch.manualSeed(o.seed)
  local X = torch.randn(N, F)
  local Y = torch.mm(X, w_true):add(0.5)
  local params = torch.zeros(F + 1)
  local grad = torch.zeros(F + 1)
  local function feval(p)
    local w = p:narrow(1, 1, F):contiguous():view(F, 1)
    local err = torch.mm(X, w):add(p[F + 1]):add(-1, Y)
    local loss = torch.pow(err, 2):mean()
    grad:narrow(1, 1, F):copy(torch.mm(X:t(), err):mul(2 / N))
    grad[F + 1] = err:sum() * 2 / N
    return loss, grad
  end
  local before = feval(params)
  local config = { learningRate = 0.25 }
  for _ = 1, o.steps do
    optim.sgd(feval, params, config)
  end
  local after = feval(params)
  result.device = "cpu"
  result.devices = 1
  result.steps = o.steps
  result.loss_before = before
  result.loss_after = after
  result.parameters = params:nElement()
  result.optimizer = "optim.sgd"
  result.seconds = now() - t0
  if not (before == before and after == after and math.abs(before) < math.huge and math.abs(after) < math.huge) then
    fail(string.format("the loss is not finite (before %s, after %s)", tostring(before), tostring(after)))
  end
  if not (after < before) then
    fail(string.format("the loss did not fall (%.6g -> %.6g)", before, after))
  end
end

local o = parse(arg)
local result = {
  ok = false,
  framework = "torch7",
  interpreter = (jit and jit.version) or _VERSION,
  device_requested = o.device,
  all_gpus = o.all_gpus,
}
local ok, err = pcall(train, o, result)
if ok then
  result.ok = true
elseif type(err) == "table" and err.reason then
  result.error = err.reason
else
  result.error = tostring(err)
  io.stderr:write(debug.traceback(tostring(err)) .. "\n")
end
result.seconds_total = now() - t_start
emit(KEYS, result)
os.exit(result.ok and 0 or 1)
