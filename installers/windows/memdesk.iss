; Inno Setup 6.3+ script for MemDesk; installers/windows/build.ps1 runs it as
;   ISCC /DAppVersion=0.1.0 [/DSign /Smemdesk=...] installers\windows\memdesk.iss
; after PyInstaller has left dist\memdesk. Output: dist\MemDesk-<version>-setup.exe.

#ifndef AppVersion
  #error Pass the version: ISCC /DAppVersion=X.Y.Z installers\windows\memdesk.iss
#endif

[Setup]
; The AppId ties upgrades and the uninstaller to one product: never change it.
AppId={{64E7064D-BEFA-4F79-B32E-4ADAEED00C94}
AppName=MemDesk
AppVersion={#AppVersion}
AppVerName=MemDesk {#AppVersion}
AppPublisher=MemDesk
VersionInfoVersion={#AppVersion}
; Paths below are relative to the repository root.
SourceDir=..\..
OutputDir=dist
OutputBaseFilename=MemDesk-{#AppVersion}-setup
; Per user by default, so no administrator is needed ({autopf} is then %LOCALAPPDATA%\Programs);
; the dialog still offers an install for all users.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
DefaultDirName={autopf}\MemDesk
DisableProgramGroupPage=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
LicenseFile=LICENSE
SetupIconFile=resources\icons\memdesk.ico
UninstallDisplayIcon={app}\memdesk.exe
UninstallDisplayName=MemDesk
WizardStyle=modern
Compression=lzma2/max
SolidCompression=yes
; MemDesk keeps running in the tray after its window is closed; an upgrade must close it first.
CloseApplications=yes
#ifdef Sign
; Defined on ISCC's command line (/Smemdesk=...), so the uninstaller is signed as well.
SignTool=memdesk
SignedUninstaller=yes
#endif

[Tasks]
Name: desktopicon; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: startup; Description: "Start MemDesk when I sign in"; GroupDescription: "{cm:AutoStartProgramGroupDescription}"; Flags: unchecked

[Files]
Source: "dist\memdesk\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\MemDesk"; Filename: "{app}\memdesk.exe"
Name: "{autodesktop}\MemDesk"; Filename: "{app}\memdesk.exe"; Tasks: desktopicon

[Registry]
; The same value Settings > Scheduler > "Start at login" writes (app/autostart.py), so the app's
; checkbox shows the installer's choice and either can undo the other.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "MemDesk"; \
    ValueData: """{app}\memdesk.exe"" gui"; Tasks: startup
; Removed at uninstall whoever wrote it (the installer or the app), with Task Manager's on/off override:
; a Run entry left behind would point at a deleted program.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: none; ValueName: "MemDesk"; \
    Flags: uninsdeletevalue dontcreatekey
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"; ValueType: none; \
    ValueName: "MemDesk"; Flags: uninsdeletevalue dontcreatekey

[Run]
Filename: "{app}\memdesk.exe"; Description: "{cm:LaunchProgram,MemDesk}"; Flags: nowait postinstall skipifsilent

[Messages]
ConfirmUninstall=Remove %1 from this computer?%n%nYour memories, settings and backups in %LOCALAPPDATA%\MemDesk are not removed.

[CustomMessages]
DataKept=Your memories were not removed: the encrypted vault, settings and learned preferences stay in%n%n%1%n%nso that a later install finds them. To erase them, delete that folder; if MemDesk kept its key in Windows Credential Manager, also remove the "MemDesk" entries there.

[Code]
// The uninstaller deletes only what Setup installed: the data folder (platformdirs'
// user_data_dir("MemDesk"), engine/vault/paths.py) is never touched. Say where it is.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if (CurUninstallStep = usPostUninstall) and not UninstallSilent then
    MsgBox(FmtMessage(CustomMessage('DataKept'), [ExpandConstant('{localappdata}\MemDesk')]),
           mbInformation, MB_OK);
end;
