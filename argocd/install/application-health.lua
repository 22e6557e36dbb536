-- Health of an Argo CD Application, so that sync waves of an app-of-apps really gate.
-- Without it the parent treats a child as healthy as soon as the child object exists
-- (argo-cd #6708, #8778, #27917). A child is only Healthy when:
--   * it has a health verdict (Missing/Unknown count as Progressing),
--   * it is Synced (Healthy but OutOfSync would release the next wave too early),
--   * no sync operation is still running, and
--   * its verdict is for the current spec: status.sync.comparedTo must equal spec.source
--     and spec.destination, otherwise the status is stale (from before an update).
local function same(a, b)
  if type(a) ~= type(b) then
    -- Argo omits empty fields on one side: treat nil and empty values alike
    local function empty(v)
      return v == nil or v == "" or v == false or (type(v) == "table" and next(v) == nil)
    end
    return empty(a) and empty(b)
  end
  if type(a) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then
      return false
    end
  end
  for k, v in pairs(b) do
    if a[k] == nil and not same(nil, v) then
      return false
    end
  end
  return true
end

local hs = {status = "Progressing", message = "waiting for the application controller"}
if obj.status == nil or obj.status.health == nil then
  return hs
end
local health = obj.status.health.status
local sync = obj.status.sync or {}
local op = obj.status.operationState
if health == nil or health == "Missing" or health == "Unknown" then
  hs.message = "no health verdict yet"
  return hs
end
if op ~= nil and (op.phase == "Failed" or op.phase == "Error") then
  hs.status = "Degraded"
  hs.message = op.message or "sync failed"
  return hs
end
if sync.comparedTo == nil
  or not same(obj.spec.source, sync.comparedTo.source)
  or not same(obj.spec.destination, sync.comparedTo.destination) then
  hs.message = "health is stale: not yet compared against the current spec"
  return hs
end
if op ~= nil and op.phase == "Running" then
  hs.message = "sync operation running"
  return hs
end
if health == "Healthy" and sync.status ~= "Synced" then
  hs.message = "healthy but " .. tostring(sync.status)
  return hs
end
hs.status = health
hs.message = obj.status.health.message or ""
return hs
