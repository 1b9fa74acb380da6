# Install linewarden from this offline bundle on Windows Server (Python 3.11+), with no package index.
#   powershell -File install.ps1 [-Prefix C:\ProgramData\linewarden\venv] [-Extras collector,postgres]
param(
  [string]$Prefix = "C:\ProgramData\linewarden\venv",
  [string]$Extras = ""
)
$ErrorActionPreference = "Stop"
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
if ($Extras -eq "") { $Extras = (Get-Content "$here\EXTRAS").Trim() }
$version = (Get-Content "$here\VERSION").Trim()
$wheels = "$here\wheels\win_amd64"
if (-not (Test-Path $wheels)) { throw "this bundle has no Windows wheels (build it with win_amd64)" }
if (-not (Test-Path "$Prefix\Scripts\python.exe")) { py -3 -m venv $Prefix }
$env:PIP_CONFIG_FILE = "NUL"
& "$Prefix\Scripts\python.exe" -m pip install --quiet --no-index --find-links $wheels "linewarden[$Extras]==$version"
if ($LASTEXITCODE -ne 0) { throw "pip install failed" }
Write-Host "linewarden $version installed in $Prefix"
