# Install the linewarden agent on Windows Server (2016 or newer) with Python 3.11+.
# The agent is a console program, so it runs as a scheduled task at system start-up under SYSTEM (or a
# service account), restarted on failure; it needs no third-party service wrapper.
# Run in an elevated PowerShell from the unpacked source tree (or pass -Source with a wheel file).
param(
  [string]$Source = ".",
  [string]$Root = "C:\ProgramData\linewarden"
)
$ErrorActionPreference = "Stop"
New-Item -ItemType Directory -Force -Path $Root, "$Root\data" | Out-Null
# Only SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544) may read the data folder (outbox, keys, pinned
# certificates) and the config: inheritance from C:\ProgramData (readable by Users) is removed. SIDs, not
# names, so the script works on any language edition of Windows.
& icacls.exe $Root /inheritance:r /grant:r "*S-1-5-18:(OI)(CI)F" "*S-1-5-32-544:(OI)(CI)F" /T /Q
if ($LASTEXITCODE -ne 0) { throw "icacls could not restrict $Root" }
py -3.11 -m venv "$Root\venv"
& "$Root\venv\Scripts\pip.exe" install --quiet $Source
if (-not (Test-Path "$Root\agent.toml")) { Copy-Item "config\agent.toml" "$Root\agent.toml" }
& "$Root\venv\Scripts\linewarden.exe" config check "$Root\agent.toml"
if ($LASTEXITCODE -ne 0) { throw "fix $Root\agent.toml first" }

$action = New-ScheduledTaskAction -Execute "$Root\venv\Scripts\linewarden.exe" `
  -Argument "agent run --config `"$Root\agent.toml`"" -WorkingDirectory $Root
$trigger = New-ScheduledTaskTrigger -AtStartup
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
  -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable -AllowStartIfOnBatteries
Register-ScheduledTask -TaskName "linewarden-agent" -Action $action -Trigger $trigger -Settings $settings `
  -User "SYSTEM" -RunLevel Highest -Force | Out-Null
Start-ScheduledTask -TaskName "linewarden-agent"
Write-Host "linewarden agent installed; data in $Root\data (set agent.data_dir there), logs in the Event Viewer task history"
