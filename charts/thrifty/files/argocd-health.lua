-- Argo CD health of a thrifty.dev OptimizedModel. Install it in argocd-cm as
--   resource.customizations.health.thrifty.dev_OptimizedModel: |
--     <this file>
-- Healthy: Ready. Suspended: spec.suspend. Degraded: a failure the operator will not retry (conversion,
-- no feasible variant, invalid spec, unknown pool) or no ready replica after serving, with the condition's
-- message. Progressing: everything else (converting, profiling, rolling out, a spec the operator has not
-- seen yet).
local hs = {}
local status = obj.status or {}
local generation = (obj.metadata or {}).generation or 0

local function condition(kind)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local degraded = {
  ConversionFailed = true,
  NoFeasibleVariant = true,
  InvalidSpec = true,
  UnknownPool = true,
  NoCPUPool = true,
  ReplicasUnavailable = true,
}

local ready = condition("Ready")
if (status.observedGeneration or 0) < generation or ready == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to reconcile generation " .. tostring(generation)
elseif obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = ready.message or "spec.suspend is true"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
elseif degraded[ready.reason] then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. (ready.message or "")
else
  hs.status = "Progressing"
  hs.message = (ready.reason or "Reconciling") .. ": " .. (ready.message or "")
end
return hs
