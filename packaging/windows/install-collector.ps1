# Install the linewarden collector as a Windows service (see install-service.ps1), elevated PowerShell:
#   powershell -File packaging\windows\install-collector.ps1 [-Source BUNDLE|WHEEL|TREE]
param([string]$Source = "", [string]$Root = "C:\ProgramData\linewarden")
& (Join-Path $PSScriptRoot "install-service.ps1") -Role collector -Source $Source -Root $Root
