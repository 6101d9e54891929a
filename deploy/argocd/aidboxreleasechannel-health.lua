-- Argo CD health check for aidbox.io/AidboxReleaseChannel (docs/status.md explains it).
-- A channel is Healthy when every cluster on it runs its image, Progressing while a wave moves
-- or soaks, Degraded when it halted at a failed upgrade or refused an older release.

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

local function verdict(o)
  local meta = o.metadata or {}
  local status = o.status
  if status == nil or status.observedGeneration == nil or status.observedGeneration == 0 then
    return { status = "Progressing", message = "waiting for the operator" }
  end
  local stalled = find_condition(status, "Stalled")
  if stalled ~= nil and stalled.status == "True" then
    return { status = "Degraded", message = (stalled.reason or "") .. ": " .. (stalled.message or "") }
  end
  if status.observedGeneration < (meta.generation or 0) then
    return { status = "Progressing", message = "generation " .. meta.generation .. " not acted on yet" }
  end
  local ready = find_condition(status, "Ready")
  if ready ~= nil and ready.status == "True" then
    return { status = "Healthy", message = ready.message or "" }
  end
  local progressing = find_condition(status, "Progressing")
  local message = "moving"
  if progressing ~= nil and progressing.message ~= nil then
    message = progressing.message
  end
  return { status = "Progressing", message = message }
end

hs = verdict(obj)
return hs
