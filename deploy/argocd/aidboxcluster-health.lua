-- Argo CD health check for aidbox.io/AidboxCluster (docs/status.md explains each verdict).
-- Argo CD runs this with the live object in `obj` and reads hs.status / hs.message.
-- The order mirrors kstatus (sigs.k8s.io/cli-utils) so Argo CD and Flux agree, except that
-- a paused cluster holding a change is Suspended, which kstatus cannot express.

local PAUSE_ANNOTATION = "aidbox.io/paused"

local function find_condition(status, type_)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == type_ then
      return condition
    end
  end
  return nil
end

local function is_true(condition)
  return condition ~= nil and condition.status == "True"
end

local function describe(condition)
  local text = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

-- The operator reads these spellings of no as not paused and any other value as paused
-- (status/blockers.py). Argo CD's VM opens no string library: the spellings are listed.
local NOT_PAUSED = {
  [""] = true, ["0"] = true, ["false"] = true, ["False"] = true, ["FALSE"] = true,
  ["no"] = true, ["No"] = true, ["NO"] = true, ["n"] = true, ["N"] = true,
  ["off"] = true, ["Off"] = true, ["OFF"] = true,
}

local function pause_asked(value)
  return value ~= nil and not NOT_PAUSED[value]
end

local function health(status_, message)
  return { status = status_, message = message }
end

local function verdict(o)
  local meta = o.metadata or {}
  local status = o.status
  local generation = meta.generation or 0
  local annotations = meta.annotations or {}

  if meta.deletionTimestamp ~= nil then
    return health("Progressing", "being deleted")
  end
  -- No observedGeneration (or the CRD's default 0): the operator has not finished with any
  -- generation yet.
  if status == nil or status.observedGeneration == nil or status.observedGeneration == 0 then
    return health("Progressing", "waiting for the operator to act on generation " .. generation)
  end

  local reconciling = find_condition(status, "Reconciling")
  local held = status.observedGeneration < generation
    or (is_true(reconciling) and reconciling.reason == "Paused")
  if pause_asked(annotations[PAUSE_ANNOTATION]) and held then
    return health("Suspended", "paused (" .. PAUSE_ANNOTATION .. "); generation " .. generation
      .. " is held, generation " .. status.observedGeneration .. " is the last applied")
  end
  -- A refusal that waits for the user (a downgrade until the override annotation names it)
  -- leaves observedGeneration behind but is computed for this generation: show it as it is.
  local stalled = find_condition(status, "Stalled")
  if status.observedGeneration < generation and is_true(stalled)
    and stalled.observedGeneration == generation then
    return health("Degraded", describe(stalled))
  end
  if status.observedGeneration < generation then
    local message = "generation " .. generation .. " not applied yet (last applied: "
      .. status.observedGeneration .. ")"
    if is_true(reconciling) then
      message = message .. "; " .. describe(reconciling)
    end
    return health("Progressing", message)
  end

  if is_true(stalled) then
    return health("Degraded", describe(stalled))
  end
  if is_true(reconciling) then
    return health("Progressing", describe(reconciling))
  end
  -- Ready=True means every replica runs this generation: a Degraded warning beside it (e.g. all
  -- pods on one node) is shown but does not outweigh it, as in kstatus.
  local ready = find_condition(status, "Ready")
  local degraded = find_condition(status, "Degraded")
  if is_true(ready) then
    local message = describe(ready)
    if is_true(degraded) then
      message = message .. "; warning: " .. describe(degraded)
    end
    return health("Healthy", message)
  end
  if is_true(degraded) then
    return health("Degraded", describe(degraded))
  end
  if ready ~= nil then
    return health("Progressing", describe(ready))
  end
  return health("Progressing", "no Ready condition yet")
end

hs = verdict(obj)
return hs
