# Install linewarden as a Windows service (Windows Server 2016 or newer, Python 3.11+), elevated PowerShell:
#   powershell -File packaging\windows\install-service.ps1 -Role agent|collector [-Source BUNDLE|WHEEL|TREE]
# Source: an offline bundle directory (packaging/bundle/build.sh win_amd64), a wheel file or a source tree;
# default: the tree or bundle this script is in. Works from any directory.
# The service runs under LocalSystem, restarts on failure (sc.exe failure actions), logs WARNING and above to
# the Event Log (source linewarden-<role>) and everything to <Root>\logs\linewarden-<role>.log (rotated).
param(
  [ValidateSet("agent", "collector")][string]$Role = "agent",
  [string]$Source = "",
  [string]$Root = "C:\ProgramData\linewarden"
)
$ErrorActionPreference = "Stop"
$tree = (Resolve-Path (Join-Path $PSScriptRoot "..\..")).Path
if ($Source -eq "") { $Source = $tree }
$extras = if ($Role -eq "collector") { "collector,postgres" } else { "" }
New-Item -ItemType Directory -Force -Path $Root, "$Root\data", "$Root\logs" | Out-Null
# Only SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544) may read the data folder (outbox, keys, pinned
# certificates) and the config: inheritance from C:\ProgramData (readable by Users) is removed. SIDs, not
# names, so the script works on any language edition of Windows.
& icacls.exe $Root /inheritance:r /grant:r "*S-1-5-18:(OI)(CI)F" "*S-1-5-32-544:(OI)(CI)F" /T /Q
if ($LASTEXITCODE -ne 0) { throw "icacls could not restrict $Root" }

if ((Test-Path "$Source\install.ps1") -and (Test-Path "$Source\wheels")) {
  & powershell -File "$Source\install.ps1" -Prefix "$Root\venv" -Extras $extras
  if ($LASTEXITCODE -ne 0) { throw "offline install failed" }
  $tree = $Source
} else {
  if (-not (Test-Path "$Root\venv\Scripts\python.exe")) { py -3 -m venv "$Root\venv" }
  $spec = if ($extras -ne "") { "$Source[$extras]" } else { $Source }
  & "$Root\venv\Scripts\pip.exe" install --quiet $spec
  if ($LASTEXITCODE -ne 0) { throw "pip install failed" }
}
$py = "$Root\venv\Scripts\python.exe"
# pywin32's service host (pythonservice.exe) and DLLs must be registered for a venv's services
& $py -m pywin32_postinstall -install -silent | Out-Null

# The example config and every file it names (relative to it), never over what is there.
if (-not (Test-Path "$Root\$Role.toml")) { Copy-Item "$tree\config\$Role.toml" "$Root\$Role.toml" }
$dirs = @("calendars"); if ($Role -eq "collector") { $dirs += "contracts" }
foreach ($d in $dirs) {
  New-Item -ItemType Directory -Force -Path "$Root\$d" | Out-Null
  Get-ChildItem "$tree\config\$d\*.toml" | ForEach-Object {
    if (-not (Test-Path "$Root\$d\$($_.Name)")) { Copy-Item $_.FullName "$Root\$d\" }
  }
}
& "$Root\venv\Scripts\linewarden.exe" config check "$Root\$Role.toml"
if ($LASTEXITCODE -ne 0) { throw "fix $Root\$Role.toml first" }

$name = "linewarden-$Role"
$env:LINEWARDEN_HOME = $Root
& $py -m linewarden.winservice $Role --startup auto install
if ($LASTEXITCODE -ne 0) { & $py -m linewarden.winservice $Role --startup auto update }
[Environment]::SetEnvironmentVariable("LINEWARDEN_HOME", $Root, "Machine")
# restart after 5 s, 5 s, then every minute; count failures over a day; also on an error exit, not only a crash
sc.exe failure $name reset= 86400 actions= restart/5000/restart/5000/restart/60000 | Out-Null
sc.exe failureflag $name 1 | Out-Null
# the task-based install of earlier versions, if present, would run a second agent
if (Get-ScheduledTask -TaskName $name -ErrorAction SilentlyContinue) { Unregister-ScheduledTask -TaskName $name -Confirm:$false }
Start-Service $name
Write-Host "$name installed and started; config $Root\$Role.toml, logs $Root\logs and the Event Log (source $name)"
