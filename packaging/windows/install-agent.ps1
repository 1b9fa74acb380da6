# Install the linewarden agent as a Windows service (see install-service.ps1), elevated PowerShell:
#   powershell -File packaging\windows\install-agent.ps1 [-Source BUNDLE|WHEEL|TREE]
param([string]$Source = "", [string]$Root = "C:\ProgramData\linewarden")
& (Join-Path $PSScriptRoot "install-service.ps1") -Role agent -Source $Source -Root $Root
