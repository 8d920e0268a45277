-- Argo CD health check for restream.dev/LiveStream (argocd-cm key
-- resource.customizations.health.restream.dev_LiveStream). It reads only what the
-- operator writes: status.observedGeneration, the conditions and status.restreams[].
-- Argo CD runs it without Lua's string library: only the base, table and os functions.
--
--   no status yet, or observedGeneration behind metadata.generation  Progressing
--   Stalled=True (a missing Secret, an image that cannot be pulled,
--     a crash loop, a name another object holds, a refused write)      Degraded
--   Reconciling=True (children being applied, an update waiting)      Progressing
--   spec.suspend                                                      Suspended
--   Ready=True                                                        Healthy (idle or live)
--   Ready=False because of a fault: a destination Retrying or Failed,
--     an enabled destination still Idle while the broadcast is on,
--     the encoder's codecs not relayed, a missing Secret               Degraded
--   Ready=False otherwise (pods starting, agents not answering yet)   Progressing
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function is_false(c)
  return c ~= nil and c.status == "False"
end

local function say(c, default)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return default
end

-- Pod states that do not end by waiting (the operator's Stalled reasons too).
local stuck = {
  SecretMissing = true,
  ErrImagePull = true,
  ImagePullBackOff = true,
  InvalidImageName = true,
  CreateContainerConfigError = true,
  CreateContainerError = true,
  CrashLoopBackOff = true,
}

-- The destinations in trouble: Retrying or Failed, or Idle while a broadcast is on.
local function failing(status, broadcasting)
  local out = ""
  if status.restreams == nil then
    return out
  end
  for _, r in ipairs(status.restreams) do
    local bad = r.state == "Retrying" or r.state == "Failed"
    if r.state == "Idle" and broadcasting then
      bad = true
    end
    if bad then
      if out ~= "" then
        out = out .. "; "
      end
      out = out .. tostring(r.name) .. ": " .. tostring(r.state)
      if r.lastError ~= nil and r.lastError ~= "" then
        out = out .. " (" .. tostring(r.lastError) .. ")"
      end
    end
  end
  return out
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator's first status"
  return hs
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "generation " .. tostring(generation) .. " is not applied yet"
  return hs
end

local stalled = condition(status, "Stalled")
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = say(stalled, "the operator cannot proceed")
  return hs
end
local reconciling = condition(status, "Reconciling")
if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = say(reconciling, "the operator is applying the spec")
  return hs
end
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: every relay is scaled to zero"
  return hs
end

local ready = condition(status, "Ready")
local broadcasting = status.broadcasting == true
if is_true(ready) then
  hs.status = "Healthy"
  if broadcasting then
    hs.message = "live: " .. tostring(status.liveRestreams) .. " destinations Live"
  else
    hs.message = "ready, no broadcast: " .. say(condition(status, "RestreamsReady"), "")
  end
  local relayable = condition(status, "Relayable")
  if is_false(relayable) then
    hs.message = hs.message .. "; " .. say(relayable, "")
  end
  return hs
end

local ingest = condition(status, "IngestReady")
local restreams = condition(status, "RestreamsReady")
if is_false(ingest) and stuck[ingest.reason] then
  hs.status = "Degraded"
  hs.message = say(ingest, "the ingest cannot start")
  return hs
end
if is_false(restreams) and (stuck[restreams.reason] or restreams.reason == "CodecNotRelayed") then
  hs.status = "Degraded"
  hs.message = say(restreams, "the destinations cannot be relayed to")
  return hs
end
local trouble = failing(status, broadcasting)
if trouble ~= "" then
  hs.status = "Degraded"
  hs.message = trouble
  return hs
end
hs.status = "Progressing"
hs.message = say(ready, "not ready yet")
return hs
